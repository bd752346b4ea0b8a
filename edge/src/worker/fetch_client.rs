//! What the AWS SDK needs to run inside a Worker: an HTTP client over `fetch`, a time source and a
//! sleep. Worker futures are not `Send`; the isolate is single-threaded, so `SendFuture` is sound.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::Client;
use aws_smithy_async::rt::sleep::{AsyncSleep, Sleep};
use aws_smithy_async::time::TimeSource;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::body::SdkBody;
use worker::send::SendFuture;

#[derive(Debug, Clone)]
struct FetchClient;

impl HttpConnector for FetchClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::new(SendFuture::new(async move { send(request).await }))
    }
}

impl HttpClient for FetchClient {
    fn http_connector(&self, _settings: &HttpConnectorSettings, _components: &RuntimeComponents) -> SharedHttpConnector {
        self.clone().into_shared()
    }
}

fn io_error(e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::io(e.to_string().into())
}

async fn send(request: HttpRequest) -> Result<Response<SdkBody>, ConnectorError> {
    let headers = worker::Headers::new();
    for (name, value) in request.headers() {
        headers.set(name, value).map_err(io_error)?;
    }
    let body = request.body().bytes().map(|b| js_sys::Uint8Array::from(b).into());
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::from(request.method().to_owned())).with_headers(headers).with_body(body);
    let js_request = worker::Request::new_with_init(request.uri(), &init).map_err(io_error)?;
    let mut response = worker::Fetch::Request(js_request).send().await.map_err(io_error)?;
    let status = StatusCode::try_from(response.status_code()).map_err(|e| ConnectorError::other(Box::new(e), None))?;
    let bytes = response.bytes().await.map_err(io_error)?;
    let mut out = Response::new(status, SdkBody::from(bytes));
    for (name, value) in response.headers().entries() {
        out.headers_mut().append(name, value);
    }
    Ok(out)
}

#[derive(Debug)]
struct JsTime;

impl TimeSource for JsTime {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(js_sys::Date::now() as u64)
    }
}

#[derive(Debug, Clone)]
struct WorkerSleep;

impl AsyncSleep for WorkerSleep {
    fn sleep(&self, duration: Duration) -> Sleep {
        Sleep::new(SendFuture::new(worker::Delay::from(duration)))
    }
}

pub fn dynamodb_client(endpoint: Option<String>, region: String, access_key: String, secret_key: String) -> Client {
    let mut builder = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "worker-secret"))
        .http_client(FetchClient)
        .time_source(JsTime)
        .sleep_impl(WorkerSleep);
    builder.set_endpoint_url(endpoint);
    Client::from_conf(builder.build())
}
