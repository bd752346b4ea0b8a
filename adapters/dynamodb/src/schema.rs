//! The table and its indexes, for tests and local set-up (production uses infra/).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use closeloop_core::ports::StoreError;

/// Sparse: only due reminders, open overdue-able cases and pending events carry gsi1pk.
pub const WORK_INDEX: &str = "work";
/// Invitations and answers of a campaign, for reports.
pub const CAMPAIGN_INDEX: &str = "campaign";
/// Sparse: invitations that have an owner, by campaign and owner, for owners' views.
pub const OWNER_INDEX: &str = "owner";
/// Invitation by its link token: the edge's one lookup.
pub const TOKEN_INDEX: &str = "token";
/// Sparse: a campaign's invitations not erased yet, oldest first, for retention.
pub const AGE_INDEX: &str = "age";

#[derive(Debug, Clone)]
pub struct TableSettings {
    pub name: String,
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().map_err(crate::request_bug)
}

fn attribute(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().map_err(crate::request_bug)
}

fn index(name: &str, hash: &str, range: Option<&str>) -> Result<GlobalSecondaryIndex, StoreError> {
    projected_index(name, hash, range, ProjectionType::All)
}

fn projected_index(name: &str, hash: &str, range: Option<&str>, projection: ProjectionType) -> Result<GlobalSecondaryIndex, StoreError> {
    let mut schema = vec![key(hash, KeyType::Hash)?];
    if let Some(range) = range {
        schema.push(key(range, KeyType::Range)?);
    }
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .set_key_schema(Some(schema))
        .projection(Projection::builder().projection_type(projection).build())
        .build()
        .map_err(crate::request_bug)
}

/// Creates the table with its indexes, stream and TTL; an existing table is left as it is.
pub async fn create_table(client: &Client, settings: &TableSettings) -> Result<(), StoreError> {
    let result = client
        .create_table()
        .table_name(&settings.name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(
            ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk", "gsi4pk", "gsi4sk", "link_token"].into_iter().map(attribute).collect::<Result<_, _>>()?,
        ))
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(index(WORK_INDEX, "gsi1pk", Some("gsi1sk"))?)
        .global_secondary_indexes(index(CAMPAIGN_INDEX, "gsi2pk", Some("gsi2sk"))?)
        .global_secondary_indexes(index(TOKEN_INDEX, "link_token", None)?)
        .global_secondary_indexes(index(OWNER_INDEX, "gsi3pk", Some("gsi3sk"))?)
        // Keys only: retention needs the ids, and a copy of every invitation would double the storage.
        .global_secondary_indexes(projected_index(AGE_INDEX, "gsi4pk", Some("gsi4sk"), ProjectionType::KeysOnly)?)
        .stream_specification(
            StreamSpecification::builder().stream_enabled(true).stream_view_type(StreamViewType::NewAndOldImages).build().map_err(crate::request_bug)?,
        )
        .send()
        .await;
    match result {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => return Ok(()),
        Err(e) => return Err(crate::unavailable(e)),
    }
    client
        .update_time_to_live()
        .table_name(&settings.name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder().enabled(true).attribute_name("expires_at").build().map_err(crate::request_bug)?,
        )
        .send()
        .await
        .map_err(crate::unavailable)?;
    Ok(())
}
