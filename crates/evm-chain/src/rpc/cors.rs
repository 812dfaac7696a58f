//! CORS for browser DApps: every HTTP answer allows any origin, and preflight `OPTIONS`
//! requests are answered directly (the devnet listens on loopback and holds no cookies, so
//! a wildcard origin exposes nothing a local page could not already reach).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Method, StatusCode, header};
use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};

/// The CORS layer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cors;

impl<S> tower::Layer<S> for Cors {
    type Service = CorsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CorsService { inner }
    }
}

/// The CORS service around the JSON-RPC server.
#[derive(Debug, Clone)]
pub(crate) struct CorsService<S> {
    inner: S,
}

fn allow(headers: &mut http::HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;

impl<S> tower::Service<HttpRequest> for CorsService<S>
where
    S: tower::Service<HttpRequest, Response = HttpResponse, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: HttpRequest) -> Self::Future {
        if req.method() == Method::OPTIONS {
            let mut response = HttpResponse::new(HttpBody::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            allow(response.headers_mut());
            return Box::pin(std::future::ready(Ok(response)));
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut response = fut.await?;
            allow(response.headers_mut());
            Ok(response)
        })
    }
}
