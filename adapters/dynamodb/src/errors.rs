//! What an SDK error means for the caller: worth retrying (throttling, timeouts, 5xx, a
//! transaction conflict) or not (validation, permission, a missing table). The SDK error is
//! kept whole as the source, so the log shows DynamoDB's own code and message.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::CancellationReason;
use closeloop_core::ports::StoreError;

/// Error codes DynamoDB returns for a request that may succeed when sent again.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
    "LimitExceededException",
];

/// Cancellation reason codes of a cancelled transaction that may succeed when sent again.
const RETRYABLE_REASONS: &[&str] = &["TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"];

/// Sorts an SDK error into a retryable `Unavailable` or a permanent `Rejected`.
pub fn classify<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retryable = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => {
            let code = service.err().code();
            code.is_some_and(|c| RETRYABLE_CODES.contains(&c)) || code.is_none()
        }
        // The request could not even be built: sending it again builds it the same way.
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    };
    if retryable {
        StoreError::unavailable(e)
    } else {
        StoreError::rejected(e)
    }
}

/// A transaction DynamoDB cancelled for reasons other than a failed condition.
#[derive(Debug, thiserror::Error)]
#[error("transaction cancelled: {}", describe(.reasons))]
pub struct Cancelled {
    pub reasons: Vec<CancellationReason>,
}

fn describe(reasons: &[CancellationReason]) -> String {
    reasons.iter().enumerate().filter_map(|(i, r)| r.code().filter(|c| *c != "None").map(|c| format!("#{i} {c}"))).collect::<Vec<_>>().join(", ")
}

impl Cancelled {
    pub fn into_store_error(self) -> StoreError {
        if self.reasons.iter().any(|r| r.code().is_some_and(|c| RETRYABLE_REASONS.contains(&c))) {
            StoreError::unavailable(self)
        } else {
            StoreError::rejected(self)
        }
    }
}

/// Whether a store error is a transaction cancelled by a conflict that outlasted its retries.
pub fn is_transaction_conflict(e: &StoreError) -> bool {
    match e {
        StoreError::Unavailable(source) => source
            .downcast_ref::<Cancelled>()
            .is_some_and(|c| c.reasons.iter().any(|r| r.code() == Some("TransactionConflict"))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    fn service_error(code: &str, status: u16) -> SdkError<PutItemError, Response> {
        let meta = ErrorMetadata::builder().code(code).message("injected").build();
        let response = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(PutItemError::generic(meta), response)
    }

    #[test]
    fn throttling_conflicts_and_server_errors_are_retryable() {
        for code in ["ThrottlingException", "ProvisionedThroughputExceededException", "InternalServerError", "TransactionConflictException"] {
            assert!(classify(service_error(code, 400)).is_retryable(), "{code}");
        }
    }

    #[test]
    fn validation_permission_and_missing_tables_are_permanent_and_keep_their_source() {
        for code in ["ValidationException", "AccessDeniedException", "ResourceNotFoundException"] {
            let error = classify(service_error(code, 400));
            assert!(matches!(error, StoreError::Rejected(_)), "{code}");
            let source = std::error::Error::source(&error).expect("the SDK error is the source");
            assert!(source.downcast_ref::<SdkError<PutItemError, Response>>().is_some(), "{code}: the source is the SDK's own error");
        }
    }

    #[test]
    fn a_cancelled_transaction_is_retryable_only_for_conflicts_and_throttling() {
        let reason = |code: &str| CancellationReason::builder().code(code).build();
        assert!(Cancelled { reasons: vec![reason("None"), reason("TransactionConflict")] }.into_store_error().is_retryable());
        assert!(!Cancelled { reasons: vec![reason("ValidationError")] }.into_store_error().is_retryable());
        assert_eq!(describe(&[reason("None"), reason("TransactionConflict")]), "#1 TransactionConflict");
    }
}
