//! Reading a table's stream (NEW_AND_OLD_IMAGES) through the DynamoDB Streams API, as records
//! with images in the table's own attribute type.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, OperationType, ShardIteratorType};

use closeloop_core::model::Event;
use closeloop_core::ports::StoreError;

use crate::{event_from_item, unavailable, DynamoStore};

pub use aws_sdk_dynamodbstreams::types::OperationType as Operation;

#[derive(Debug, Clone)]
pub struct StreamRecord {
    pub operation: OperationType,
    pub new_image: Option<HashMap<String, AttributeValue>>,
    pub old_image: Option<HashMap<String, AttributeValue>>,
}

impl StreamRecord {
    /// The item's keys, from whichever image the record has.
    pub fn key(&self) -> (String, String) {
        let image = self.new_image.as_ref().or(self.old_image.as_ref());
        let get = |name: &str| image.and_then(|i| i.get(name)).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        (get("pk"), get("sk"))
    }

    /// The event an inserted event item carries: what the on-answer function consumes.
    pub fn event(&self) -> Option<Event> {
        (self.operation == OperationType::Insert).then_some(())?;
        event_from_item(self.new_image.as_ref()?)
    }
}

fn convert(value: &StreamValue) -> Option<AttributeValue> {
    Some(match value {
        StreamValue::S(s) => AttributeValue::S(s.clone()),
        StreamValue::N(n) => AttributeValue::N(n.clone()),
        StreamValue::Bool(b) => AttributeValue::Bool(*b),
        StreamValue::Null(b) => AttributeValue::Null(*b),
        StreamValue::L(l) => AttributeValue::L(l.iter().filter_map(convert).collect()),
        StreamValue::M(m) => AttributeValue::M(m.iter().filter_map(|(k, v)| Some((k.clone(), convert(v)?))).collect()),
        _ => return None,
    })
}

fn image(i: Option<HashMap<String, StreamValue>>) -> Option<HashMap<String, AttributeValue>> {
    i.map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), convert(v)?))).collect())
}

/// A GetRecords batch as records with the table's own attribute type.
fn records_of(batch: Vec<aws_sdk_dynamodbstreams::types::Record>) -> impl Iterator<Item = StreamRecord> {
    batch.into_iter().filter_map(|r| {
        let (Some(operation), Some(data)) = (r.event_name, r.dynamodb) else { return None };
        Some(StreamRecord { operation, new_image: image(data.new_image), old_image: image(data.old_image) })
    })
}

/// Every record the stream holds now, oldest first per shard.
pub async fn read_all(store: &DynamoStore, streams: &aws_sdk_dynamodbstreams::Client) -> Result<Vec<StreamRecord>, StoreError> {
    let table = store.client().describe_table().table_name(store.table()).send().await.map_err(unavailable)?;
    let arn = table
        .table
        .and_then(|t| t.latest_stream_arn)
        .ok_or_else(|| StoreError::rejected(format!("table {} has no stream", store.table())))?;
    let description = streams.describe_stream().stream_arn(&arn).send().await.map_err(unavailable)?;
    let shards = description.stream_description.and_then(|d| d.shards).unwrap_or_default();
    let mut records = Vec::new();
    for shard in shards {
        let Some(shard_id) = shard.shard_id else { continue };
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(unavailable)?
            .shard_iterator;
        while let Some(it) = iterator {
            let out = streams.get_records().shard_iterator(it).send().await.map_err(unavailable)?;
            let batch = out.records.unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            records.extend(records_of(batch));
            iterator = out.next_shard_iterator;
        }
    }
    Ok(records)
}

/// Reads a stream from now on, as Lambda's poller does: each shard's position is kept between
/// reads, so a read returns only what was written since the last one (`read_all` starts over).
pub struct StreamTail {
    arn: String,
    positions: HashMap<String, Option<String>>,
}

impl StreamTail {
    /// Positioned after everything the stream holds now.
    pub async fn from_now(store: &DynamoStore, streams: &aws_sdk_dynamodbstreams::Client) -> Result<Self, StoreError> {
        let table = store.client().describe_table().table_name(store.table()).send().await.map_err(unavailable)?;
        let arn = table.table.and_then(|t| t.latest_stream_arn).ok_or_else(|| StoreError::rejected(format!("table {} has no stream", store.table())))?;
        let mut tail = Self { arn, positions: HashMap::new() };
        for shard in tail.shards(streams).await? {
            let latest = tail.iterator(streams, &shard, ShardIteratorType::Latest).await?;
            tail.positions.insert(shard, latest);
        }
        Ok(tail)
    }

    async fn shards(&self, streams: &aws_sdk_dynamodbstreams::Client) -> Result<Vec<String>, StoreError> {
        let description = streams.describe_stream().stream_arn(&self.arn).send().await.map_err(unavailable)?;
        Ok(description.stream_description.and_then(|d| d.shards).unwrap_or_default().into_iter().filter_map(|s| s.shard_id).collect())
    }

    async fn iterator(&self, streams: &aws_sdk_dynamodbstreams::Client, shard: &str, kind: ShardIteratorType) -> Result<Option<String>, StoreError> {
        let out = streams.get_shard_iterator().stream_arn(&self.arn).shard_id(shard).shard_iterator_type(kind).send().await.map_err(unavailable)?;
        Ok(out.shard_iterator)
    }

    /// What was written since the last read (a shard that appeared meanwhile from its start).
    pub async fn read(&mut self, streams: &aws_sdk_dynamodbstreams::Client) -> Result<Vec<StreamRecord>, StoreError> {
        for shard in self.shards(streams).await? {
            if !self.positions.contains_key(&shard) {
                let start = self.iterator(streams, &shard, ShardIteratorType::TrimHorizon).await?;
                self.positions.insert(shard, start);
            }
        }
        let mut records = Vec::new();
        for position in self.positions.values_mut() {
            while let Some(it) = position.clone() {
                let out = streams.get_records().shard_iterator(it).send().await.map_err(unavailable)?;
                let batch = out.records.unwrap_or_default();
                // An open shard always has a next iterator: keep it, so the next read goes on from here.
                *position = out.next_shard_iterator;
                if batch.is_empty() {
                    break;
                }
                records.extend(records_of(batch));
            }
        }
        Ok(records)
    }
}

/// A Streams client for DynamoDB Local at `DYNAMODB_ENDPOINT`.
pub fn local_streams_client() -> Result<aws_sdk_dynamodbstreams::Client, StoreError> {
    let endpoint = std::env::var("DYNAMODB_ENDPOINT").map_err(|_| StoreError::rejected("DYNAMODB_ENDPOINT is not set"))?;
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodbstreams::config::Region::new("eu-north-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodbstreams::config::Credentials::new("local", "local", None, None, "closeloop-local"))
        .build();
    Ok(aws_sdk_dynamodbstreams::Client::from_conf(config))
}
