//! `remember`: read a key or load it once. Concurrent misses of one key in a process
//! cost one load (single-flight, `load.rs`); with a lease, one load across instances;
//! with early refresh, hot keys are reloaded before they expire (XFetch).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Namespace;
use crate::error::{Error, ErrorKind, Result};
use crate::key::Aux;
use crate::load::RememberError;
use crate::ttl::Ttl;

impl Namespace {
    /// Returns the value of `key`, or runs `loader`, stores its value with `ttl` and
    /// returns it.
    ///
    /// **Single-flight**: concurrent misses of one key in this process run `loader` once;
    /// the other callers wait for that load and get its value (or its error). If the
    /// caller running the loader is cancelled, a waiting caller runs its own loader, so
    /// nobody waits forever. Loader errors are not cached.
    ///
    /// ```
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use sharecache::{Cache, Ttl};
    /// let users = Cache::builder().memory().build().await?.namespace("user")?;
    /// let name: String = users
    ///     .remember("name:42", Ttl::secs(300), || async { Ok::<_, std::io::Error>("Ada".to_string()) })
    ///     .await?;
    /// assert_eq!(name, "Ada");
    /// # Ok(()) }
    /// ```
    pub async fn remember<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Ttl,
        loader: F,
    ) -> std::result::Result<T, RememberError<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, E>>,
    {
        self.remember_with(key, ttl, &RememberOptions::default(), loader)
            .await
    }

    /// [`remember`](Self::remember) with options. With
    /// [`RememberOptions::lease`], concurrent misses of one key on *all instances* cost one
    /// load: the instance that takes the key's lease (a short-lived Redis key) loads, the
    /// others poll for the value; if the loading instance dies or its loader outlives the
    /// lease, the lease expires and a waiting instance takes it over.
    pub async fn remember_with<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Ttl,
        opts: &RememberOptions,
        loader: F,
    ) -> std::result::Result<T, RememberError<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, E>>,
    {
        let opts = RememberOptions {
            negative_ttl: None,
            ..opts.clone()
        };
        match self
            .remember_core(key, ttl, &opts, || async { loader().await.map(Some) })
            .await?
        {
            Some(v) => Ok(v),
            // Only a concurrent `remember_optional` of the same key can produce this.
            None => Err(RememberError::Cache(Error::new(
                ErrorKind::Decode,
                "remember: the key is cached as absent by remember_optional",
            ))),
        }
    }

    /// Like [`remember_with`](Self::remember_with) for a loader that may find nothing
    /// (`Ok(None)`). With [`RememberOptions::negative_ttl`], that absence is cached too:
    /// later calls within the TTL return `None` without loading (a plain `get` sees a
    /// miss). Without it, absence is not cached.
    pub async fn remember_optional<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Ttl,
        opts: &RememberOptions,
        loader: F,
    ) -> std::result::Result<Option<T>, RememberError<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<Option<T>, E>>,
    {
        self.remember_core(key, ttl, opts, loader).await
    }

    /// Value, cached absence, or nothing, for `remember`.
    async fn lookup<T>(&self, key: &str, negatives: bool) -> Result<Lookup<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        if let Some(v) = self.get::<T>(key).await? {
            return Ok(Lookup::Found(v));
        }
        if negatives {
            let full = self.space.key(key)?;
            if let Some(raw) = self.kv().get(&full).await?
                && crate::codec::is_negative(&raw)
            {
                return Ok(Lookup::Absent);
            }
        }
        Ok(Lookup::Missing)
    }

    async fn remember_core<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Ttl,
        opts: &RememberOptions,
        loader: F,
    ) -> std::result::Result<Option<T>, RememberError<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<Option<T>, E>>,
    {
        type Erased = Arc<dyn std::any::Any + Send + Sync>;
        let negatives = opts.negative_ttl.is_some();
        let mut refresh = false;
        let mut current: Option<T> = None;
        match self.lookup::<T>(key, negatives).await? {
            Lookup::Found(v) => match opts.early_refresh {
                Some(beta) if self.refresh_early(key, beta).await => {
                    refresh = true;
                    current = Some(v);
                }
                _ => return Ok(Some(v)),
            },
            Lookup::Absent => return Ok(None),
            Lookup::Missing => {}
        }
        ttl.validate()?;
        let negative_ttl = opts.negative_ttl.map(Ttl::validate).transpose()?.flatten();
        let full = self.space.key(key)?;
        let flight = self.inner.flights.join(&full);
        let outcome = flight
            .get_or_init(|| async {
                let found = |v: Option<T>| Ok(Arc::new(v) as Erased);
                let cache_err = |e: Error| Err(Arc::new(RememberError::<E>::Cache(e)) as Erased);
                // A flight that just landed may have stored the value: look once more
                // (unless this flight is an early refresh of a value we already have).
                let lease = match opts.lease {
                    None if refresh => None,
                    // An early refresh takes the lease if it is free; if another instance
                    // holds it, that instance is refreshing: keep the current value.
                    Some(d) if refresh => {
                        let token = Bytes::from(crate::random::u64().to_string());
                        match self.kv().set_nx(&self.space.aux_of(Aux::Lease, key), token.clone(), Some(d)).await {
                            Ok(true) => Some(token),
                            Ok(false) => return found(current.clone()),
                            Err(e) => return cache_err(e),
                        }
                    }
                    None => match self.lookup::<T>(key, negatives).await {
                        Ok(Lookup::Found(v)) => return found(Some(v)),
                        Ok(Lookup::Absent) => return found(None),
                        Ok(Lookup::Missing) => None,
                        Err(e) => return cache_err(e),
                    },
                    Some(d) => match self.take_lease::<T>(key, d).await {
                        Ok(Lease::Loaded(v)) => return found(Some(v)),
                        Ok(Lease::Held(token)) => Some(token),
                        Ok(Lease::Unleased) => None,
                        Err(e) => return cache_err(e),
                    },
                };
                let started = std::time::Instant::now();
                let out = match loader().await {
                    Ok(Some(v)) => {
                        let delta = started.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
                        if let Err(e) = self.set_computed(key, &v, ttl, delta).await {
                            tracing::warn!(namespace = %self.name, key, error = %e, "remember: the loaded value could not be stored");
                        }
                        found(Some(v))
                    }
                    Ok(None) => {
                        if let Some(nttl) = negative_ttl {
                            let stored = self.kv().set(&full, crate::codec::negative_marker(), Some(nttl));
                            if let Err(e) = self.tiered_write(&[&full], stored).await {
                                tracing::warn!(namespace = %self.name, key, error = %e, "remember: the absence could not be stored");
                            }
                        }
                        found(None)
                    }
                    Err(e) => Err(Arc::new(e) as Erased),
                };
                if let Some(token) = lease {
                    // Hand the key back at once (value stored, or loader failed: let
                    // another instance try without waiting for the lease to expire).
                    let _ = self.kv().del_if_eq(&self.space.aux_of(Aux::Lease, key), token).await;
                }
                out
            })
            .await
            .clone();
        self.inner.flights.land(&full, &flight);
        match outcome {
            Ok(v) => match v.downcast_ref::<Option<T>>() {
                Some(v) => Ok(v.clone()),
                None => Err(RememberError::Cache(Error::new(
                    ErrorKind::Decode,
                    "remember: concurrent callers of one key used different value types",
                ))),
            },
            Err(e) => {
                if let Ok(e) = e.clone().downcast::<E>() {
                    return Err(RememberError::Loader(e));
                }
                match e.downcast_ref::<RememberError<E>>() {
                    Some(RememberError::Cache(c)) => Err(RememberError::Cache(c.clone())),
                    _ => Err(RememberError::Cache(Error::new(
                        ErrorKind::Decode,
                        "remember: concurrent callers of one key used different error types",
                    ))),
                }
            }
        }
    }

    /// Takes the cross-instance load lease of `key`, or waits for the holder's value.
    async fn take_lease<T>(&self, key: &str, lease: Duration) -> Result<Lease<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let lease_key = self.space.aux_of(Aux::Lease, key);
        let poll = (lease / 20).clamp(Duration::from_millis(2), Duration::from_millis(25));
        // Bounded: after ten lease periods without a value or a lease, load anyway.
        let deadline = tokio::time::Instant::now() + lease * 10;
        loop {
            if let Some(v) = self.get::<T>(key).await? {
                return Ok(Lease::Loaded(v));
            }
            let token = Bytes::from(crate::random::u64().to_string());
            if self
                .kv()
                .set_nx(&lease_key, token.clone(), Some(lease))
                .await?
            {
                // Taken: check once more (the holder may have stored and released
                // between our read and our lease).
                if let Some(v) = self.get::<T>(key).await? {
                    let _ = self.kv().del_if_eq(&lease_key, token).await;
                    return Ok(Lease::Loaded(v));
                }
                return Ok(Lease::Held(token));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Lease::Unleased);
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Stores a computed value with how long it took (for early refresh).
    async fn set_computed<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl: Ttl,
        delta_ms: u32,
    ) -> Result<()> {
        let full = self.space.key(key)?;
        let ttl = ttl.validate()?;
        let bytes = crate::codec::with_delta(&self.codec.encode(value)?, delta_ms);
        self.write_encoded(&full, bytes, ttl).await
    }

    /// XFetch: refresh now if `remaining <= -delta * beta * ln(u)`, u uniform in (0, 1].
    async fn refresh_early(&self, key: &str, beta: f64) -> bool {
        let Ok(full) = self.space.key(key) else {
            return false;
        };
        let meta = match self
            .tier()
            .and_then(|t| t.get(&full).map(|e| (t.remaining(&e), e.bytes.clone())))
        {
            Some((remaining, bytes)) => remaining.map(|r| (r, bytes)),
            None => match self.kv().get_with_ttl(&full).await {
                Ok((Some(bytes), Some(ttl))) => Some((ttl, bytes)),
                _ => None,
            },
        };
        let Some((remaining, bytes)) = meta else {
            return false;
        };
        let Some(delta) = crate::codec::delta_of(&bytes) else {
            return false;
        };
        let u = ((crate::random::u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64; // (0, 1]
        let threshold_ms = -(f64::from(delta.max(1))) * beta * u.ln();
        (remaining.as_millis() as f64) <= threshold_ms
    }
}

/// Options of [`Namespace::remember_with`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RememberOptions {
    lease: Option<Duration>,
    negative_ttl: Option<Ttl>,
    early_refresh: Option<f64>,
}

impl RememberOptions {
    /// Coordinates loads across instances with a lease of this length: it should exceed
    /// the loader's usual duration (a longer load lets a waiting instance take over).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease.max(Duration::from_millis(10)));
        self
    }
}

impl RememberOptions {
    /// Refreshes hot keys before they expire (XFetch, probabilistic early expiration):
    /// a hit recomputes the value with a probability that grows as the key nears its
    /// expiry, scaled by how long the last computation took and by `beta` (1.0 is the
    /// usual choice; higher refreshes earlier). Under steady load a hot key is reloaded by
    /// one caller before it expires instead of by everyone after.
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.early_refresh = (beta.is_finite() && beta > 0.0).then_some(beta);
        self
    }

    /// With [`Namespace::remember_optional`], caches a loader's `None` for this long.
    pub fn negative_ttl(mut self, ttl: Ttl) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }
}

/// What `remember` found before loading.
enum Lookup<T> {
    Found(T),
    /// The key is cached as absent (negative caching).
    Absent,
    Missing,
}

/// Outcome of `Namespace::take_lease`.
enum Lease<T> {
    /// Another instance loaded the value meanwhile.
    Loaded(T),
    /// We hold the lease (its token).
    Held(Bytes),
    /// Gave up waiting: load without a lease.
    Unleased,
}
