//! A login-attempt limiter, as an auth service would use it: five attempts per email per
//! fifteen minutes, in the `auth` namespace (`auth:attempts:{email}`).
//!
//!     cargo run -p sharecache --example login_attempts
//!     REDIS_URL=redis://127.0.0.1:6379 cargo run -p sharecache --example login_attempts

use std::time::Duration;

use sharecache::Cache;
use sharecache::ratelimit::Limit;

#[tokio::main]
async fn main() -> sharecache::Result<()> {
    let auth = Cache::builder()
        .with_env()?
        .build()
        .await?
        .namespace("auth")?;
    let limit = Limit::per(5, Duration::from_secs(15 * 60));
    let email = "ada@example.com";
    for attempt in 1..=7 {
        let d = auth
            .rate_limits()
            .check(&format!("attempts:{email}"), limit)
            .await?;
        if d.allowed {
            println!(
                "attempt {attempt}: checking the password ({} attempts left)",
                d.remaining
            );
        } else {
            println!(
                "attempt {attempt}: refused, try again in {} s",
                d.retry_after.as_secs()
            );
        }
    }
    Ok(())
}
