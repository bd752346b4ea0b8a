//! The storage contract, against DynamoDB Local: once as it is, and once more with
//! `TransactionConflict` cancellations injected, which real DynamoDB raises when two transactions
//! touch one item at the same moment and DynamoDB Local never does (it runs them one after the
//! other).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::body::SdkBody;
use closeloop_dynamodb::{create_table, local_client, DynamoStore, TableSettings};

async fn dynamo_store() -> DynamoStore {
    let client = local_client().expect("DynamoDB Local");
    // One table per test process; cases use distinct campaigns and contacts, so they share it.
    let table = format!("closeloop-contract-{}", std::process::id());
    create_table(&client, &TableSettings { name: table.clone() }).await.expect("table created");
    DynamoStore::new(client, table)
}

closeloop_core::store_contract_tests!(dynamo_store);

/// Forwards every request to DynamoDB Local, except that every `every`-th TransactWriteItems is
/// answered, without being forwarded, as DynamoDB answers a transaction cancelled by a conflict.
#[derive(Debug, Clone)]
struct InjectConflicts {
    every: usize,
    transactions: Arc<AtomicUsize>,
    injected: Arc<AtomicUsize>,
    http: reqwest::Client,
}

impl InjectConflicts {
    async fn send(self, request: HttpRequest) -> Result<Response<SdkBody>, ConnectorError> {
        let target = request.headers().get("x-amz-target").unwrap_or_default().to_owned();
        let body = request.body().bytes().unwrap_or_default().to_vec();
        if target.ends_with(".TransactWriteItems") && self.transactions.fetch_add(1, Ordering::SeqCst) % self.every == 0 {
            self.injected.fetch_add(1, Ordering::SeqCst);
            let items = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["TransactItems"].as_array().map(Vec::len))
                .unwrap_or(1);
            let mut reasons = vec![serde_json::json!({ "Code": "None" }); items];
            reasons[items - 1] = serde_json::json!({ "Code": "TransactionConflict", "Message": "Transaction is ongoing for the item" });
            let answer = serde_json::json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
                "CancellationReasons": reasons,
            });
            let mut response = Response::new(StatusCode::try_from(400).expect("status"), SdkBody::from(answer.to_string()));
            response.headers_mut().insert("content-type", "application/x-amz-json-1.0");
            return Ok(response);
        }
        let method = reqwest::Method::from_bytes(request.method().as_bytes()).map_err(|e| ConnectorError::other(Box::new(e), None))?;
        let mut forwarded = self.http.request(method, request.uri());
        for (name, value) in request.headers() {
            forwarded = forwarded.header(name, value);
        }
        let reply = forwarded.body(body).send().await.map_err(|e| ConnectorError::io(Box::new(e)))?;
        let status = StatusCode::try_from(reply.status().as_u16()).map_err(|e| ConnectorError::other(Box::new(e), None))?;
        let headers: Vec<(String, String)> =
            reply.headers().iter().filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str().to_owned(), v.to_owned()))).collect();
        let bytes = reply.bytes().await.map_err(|e| ConnectorError::io(Box::new(e)))?;
        let mut response = Response::new(status, SdkBody::from(bytes.to_vec()));
        for (name, value) in headers {
            response.headers_mut().append(name, value);
        }
        Ok(response)
    }
}

impl HttpConnector for InjectConflicts {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::new(self.clone().send(request))
    }
}

impl HttpClient for InjectConflicts {
    fn http_connector(&self, _settings: &HttpConnectorSettings, _components: &RuntimeComponents) -> SharedHttpConnector {
        self.clone().into_shared()
    }
}

fn conflicting_client(every: usize) -> (aws_sdk_dynamodb::Client, InjectConflicts) {
    let inject = InjectConflicts {
        every,
        transactions: Arc::default(),
        injected: Arc::default(),
        http: reqwest::Client::new(),
    };
    let config = local_client().expect("DynamoDB Local").config().to_builder().http_client(inject.clone()).build();
    (aws_sdk_dynamodb::Client::from_conf(config), inject)
}

mod with_injected_conflicts {
    use super::*;

    /// Every third transaction is cancelled by a conflict the first time it is sent.
    async fn conflicted_store() -> DynamoStore {
        let (client, _) = conflicting_client(3);
        let table = format!("closeloop-conflicts-{}", std::process::id());
        create_table(&client, &TableSettings { name: table.clone() }).await.expect("table created");
        DynamoStore::new(client, table)
    }

    closeloop_core::store_contract_tests!(conflicted_store);
}

#[tokio::test]
async fn conflicts_are_really_injected_and_retried_until_the_write_lands() {
    use closeloop_core::ports::Store;
    let (client, inject) = conflicting_client(2);
    let table = format!("closeloop-conflict-count-{}", std::process::id());
    create_table(&client, &TableSettings { name: table.clone() }).await.expect("table created");
    let store = DynamoStore::new(client, table);
    closeloop_core::contract::concurrent_writers_on_one_campaign_lose_nothing_and_count_everything_once(&store).await;
    let (sent, injected) = (inject.transactions.load(Ordering::SeqCst), inject.injected.load(Ordering::SeqCst));
    assert!(injected * 2 >= sent - 1 && injected > 20, "{injected} of {sent} transactions were cancelled by a conflict");
    assert_eq!(store.settle_counters().await.unwrap(), 0, "everything was counted already");
}
