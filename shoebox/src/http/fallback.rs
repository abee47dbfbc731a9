//! What a request that matches no route, or a route by the wrong method, is answered with.
//!
//! Axum's own answers are a bare 404 or 405 with no body: a browser then shows its own "This
//! page isn't working" screen and an API client gets no `{error, message}`. So every such
//! request gets the answer its part of the service gives everywhere else: a page with the
//! signed-in header under the pages, the API's JSON under `/api/`, and a plain 404 for a
//! static file (a stylesheet or script that is missing is not read by a person).
//!
//! The path is the one inside the service: nested under `/media`, the router sees
//! `/api/...` for `/media/api/...`, so the same rule works at any base path.

use axum::extract::{FromRequestParts as _, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Host;
use super::error::{ApiError, AppError, PageError};
use super::identity::MaybeViewer;

/// Which kind of answer a path inside the service gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Api,
    Static,
    Page,
}

fn part_of(path: &str) -> Part {
    if path == "/api" || path.starts_with("/api/") {
        Part::Api
    } else if path.starts_with("/static/") {
        Part::Static
    } else {
        Part::Page
    }
}

/// The answer to a request no route matched: 404 as a page, as the API's JSON, or plain for a
/// static file. [`router`](super::router) sets it as its fallback; a host that nests only
/// some of Shoebox's routers, or wants Shoebox's error page for its own unknown paths, sets it
/// with `Router::fallback(shoebox::http::not_found::<S>)`.
pub async fn not_found<S: Host>(State(state): State<S>, request: Request) -> Response {
    answer(&state, request, AppError::NotFound).await
}

/// The answer to a route asked by a method it does not take: 405 as a page or as the API's
/// JSON. Axum adds the `Allow` header with the route's methods. Set on every route of
/// Shoebox's routers; a host adds it to its own with
/// `Router::method_not_allowed_fallback(shoebox::http::method_not_allowed::<S>)`.
pub async fn method_not_allowed<S: Host>(State(state): State<S>, request: Request) -> Response {
    let method = request.method().clone();
    answer(&state, request, AppError::MethodNotAllowed(method)).await
}

async fn answer<S: Host>(state: &S, request: Request, e: AppError) -> Response {
    match part_of(request.uri().path()) {
        Part::Api => ApiError(e).into_response(),
        Part::Static => {
            let status = super::error::status_of(&e);
            (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], plain(status)).into_response()
        }
        Part::Page => {
            let (mut parts, _) = request.into_parts();
            // Asked so the page shows who is signed in; an identity outage is its own answer.
            match MaybeViewer::from_request_parts(&mut parts, state).await {
                Ok(MaybeViewer(viewer)) => PageError(e).page(Some(state.page_chrome(viewer.as_ref()))),
                Err(outage) => PageError(outage.0).into_response(),
            }
        }
    }
}

fn plain(status: StatusCode) -> &'static str {
    if status == StatusCode::NOT_FOUND { "Not found.\n" } else { "Method not allowed.\n" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_sorted_into_the_api_static_files_and_pages() {
        assert_eq!(part_of("/api/nope"), Part::Api);
        assert_eq!(part_of("/api"), Part::Api);
        assert_eq!(part_of("/apiary"), Part::Page);
        assert_eq!(part_of("/static/missing.js"), Part::Static);
        assert_eq!(part_of("/no/such/page"), Part::Page);
        assert_eq!(part_of("/"), Part::Page);
    }
}
