//! Waiting for a deadline that may not be set.

/// Sleeps until `at`, or forever when there is no deadline: a `select!`
/// branch that fires only when one is set.
pub async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
