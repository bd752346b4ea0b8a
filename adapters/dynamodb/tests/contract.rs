//! The storage contract, against DynamoDB Local.

use closeloop_dynamodb::{create_table, local_client, DynamoStore, TableSettings};

async fn dynamo_store() -> DynamoStore {
    let client = local_client().expect("DynamoDB Local");
    // One table per test process; cases use distinct campaigns and contacts, so they share it.
    let table = format!("closeloop-contract-{}", std::process::id());
    create_table(&client, &TableSettings { name: table.clone() }).await.expect("table created");
    DynamoStore::new(client, table)
}

closeloop_core::store_contract_tests!(dynamo_store);
