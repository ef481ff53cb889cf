//! Every Lua script the Redis backend runs: one `.lua` file each under `lua/`, loaded with
//! `include_str!`, so a script is read, diffed and reviewed as Lua.
//!
//! Each script touches the keys it is given only (on a cluster they share one hash tag,
//! so no script spans two slots), reads time from the server (`TIME`) where it needs
//! it, so every instance agrees, and is run through redis-rs `Script` (EVALSHA, and the
//! script itself on `NOSCRIPT` after a restart or `SCRIPT FLUSH`).
//!
//! **Guarantee**: each script has a test below that runs it on a real `redis-server`
//! started by the testkit.

use std::sync::LazyLock;

use redis::Script;

macro_rules! scripts {
    ($($(#[$doc:meta])* $name:ident = $file:literal;)*) => {
        $(
            $(#[$doc])*
            pub(crate) static $name: LazyLock<Script> =
                LazyLock::new(|| Script::new(include_str!(concat!("lua/", $file))));
        )*
        /// Every script, by file name.
        #[cfg(test)]
        static ALL: &[(&str, &LazyLock<Script>)] = &[$(($file, &$name)),*];
    };
}

scripts! {
    /// Compare-and-delete: `KEYS[1]`, expected value; 1 if deleted.
    DEL_IF_EQ = "del_if_eq.lua";
    /// Compare-and-set: `KEYS[1]`; expected value, new value, ttl ms (0: none); 1 if set.
    SET_IF_EQ = "set_if_eq.lua";
    /// Counter: `KEYS[1]`; delta, ttl ms for a new counter (0: none); the new value.
    INCR = "incr.lua";
    /// Lock and fence in one step: lock, fence keys; token, ttl ms; the fence or nil.
    LOCK_ACQUIRE = "lock_acquire.lua";
    /// Extends a lock for its holder: lock key; token, ttl ms; 1 if extended.
    LOCK_EXTEND = "lock_extend.lua";
    /// One GCRA step: state key; limit, period ms, cost.
    GCRA = "gcra.lua";
    /// One sliding-window step: state key; limit, period ms, cost.
    SLIDING_WINDOW = "sliding_window.lua";
    /// Presence heartbeat: set key; member, ttl ms.
    PRESENCE_BEAT = "presence_beat.lua";
    /// Presence leave: set key; member; 1 if it was alive.
    PRESENCE_LEAVE = "presence_leave.lua";
    /// Presence list: set key; flat member, ms-left pairs, soonest first.
    PRESENCE_LIST = "presence_list.lua";
    /// Queue claim: stream, dead-letter stream; consumer, count, idle ms, max deliveries.
    QUEUE_CLAIM = "queue_claim.lua";
    /// Queue ack: stream; ids; how many were pending.
    QUEUE_ACK = "queue_ack.lua";
    /// Queue figures: stream, dead-letter stream; {ready, pending, dead}.
    QUEUE_STATS = "queue_stats.lua";
    /// One dead letter out: stream, dead-letter stream; id, 1 to requeue, most to scan;
    /// the new id, the id, or nil.
    QUEUE_DEAD_TAKE = "queue_dead_take.lua";
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use redis::aio::MultiplexedConnection;
    use sharecache_testkit::RedisServer;

    use super::*;

    async fn redis() -> (RedisServer, MultiplexedConnection) {
        let server = RedisServer::start();
        let conn = redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        (server, conn)
    }

    async fn cmd<T: redis::FromRedisValue>(c: &mut MultiplexedConnection, args: &[&str]) -> T {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(c).await.unwrap()
    }

    /// Runs `script` with `keys` and `args` (numbers as text, as Lua's `tonumber` and
    /// Redis take them).
    async fn run<T: redis::FromRedisValue>(
        c: &mut MultiplexedConnection,
        script: &Script,
        keys: &[&str],
        args: &[&str],
    ) -> T {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for a in args {
            inv.arg(*a);
        }
        inv.invoke_async(c).await.unwrap()
    }

    #[tokio::test]
    async fn every_script_loads() {
        let (_s, mut c) = redis().await;
        for (file, script) in ALL {
            let text = std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("src/store/redis/lua")
                    .join(file),
            )
            .unwrap();
            let sha: String = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(text)
                .query_async(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(sha, script.get_hash(), "{file}");
        }
    }

    #[tokio::test]
    async fn set_if_eq_writes_only_over_the_expected_value() {
        let (_s, mut c) = redis().await;
        assert_eq!(
            run::<i64>(&mut c, &SET_IF_EQ, &["k"], &["a", "b", "0"]).await,
            0,
            "nothing to compare with: nothing is created"
        );
        assert_eq!(cmd::<i64>(&mut c, &["EXISTS", "k"]).await, 0);
        cmd::<()>(&mut c, &["SET", "k", "a"]).await;
        assert_eq!(
            run::<i64>(&mut c, &SET_IF_EQ, &["k"], &["x", "b", "0"]).await,
            0
        );
        assert_eq!(cmd::<String>(&mut c, &["GET", "k"]).await, "a");
        assert_eq!(
            run::<i64>(&mut c, &SET_IF_EQ, &["k"], &["a", "b", "60000"]).await,
            1
        );
        assert_eq!(cmd::<String>(&mut c, &["GET", "k"]).await, "b");
        let ttl: i64 = cmd(&mut c, &["PTTL", "k"]).await;
        assert!((59_000..=60_000).contains(&ttl), "{ttl}");
        assert_eq!(
            run::<i64>(&mut c, &SET_IF_EQ, &["k"], &["b", "c", "0"]).await,
            1
        );
        assert_eq!(
            cmd::<i64>(&mut c, &["PTTL", "k"]).await,
            -1,
            "ttl 0: no expiry"
        );
        cmd::<()>(&mut c, &["HSET", "h", "f", "v"]).await;
        let mut inv = SET_IF_EQ.prepare_invoke();
        inv.key("h").arg("v").arg("w").arg(0);
        let e = inv.invoke_async::<i64>(&mut c).await.unwrap_err();
        assert_eq!(e.code(), Some("WRONGTYPE"), "{e}");
    }

    #[tokio::test]
    async fn incr_counts_sets_the_ttl_of_a_new_counter_only_and_refuses_other_values() {
        let (_s, mut c) = redis().await;
        assert_eq!(run::<i64>(&mut c, &INCR, &["n"], &["5", "60000"]).await, 5);
        let ttl: i64 = cmd(&mut c, &["PTTL", "n"]).await;
        assert!(ttl > 59_000, "{ttl}");
        cmd::<()>(&mut c, &["PERSIST", "n"]).await;
        assert_eq!(
            run::<i64>(&mut c, &INCR, &["n"], &["-7", "60000"]).await,
            -2
        );
        assert_eq!(
            cmd::<i64>(&mut c, &["PTTL", "n"]).await,
            -1,
            "an existing counter keeps its TTL"
        );
        assert_eq!(run::<i64>(&mut c, &INCR, &["m"], &["1", "0"]).await, 1);
        assert_eq!(cmd::<i64>(&mut c, &["PTTL", "m"]).await, -1);
        cmd::<()>(&mut c, &["SET", "s", "{\"a\":1}"]).await;
        let mut inv = INCR.prepare_invoke();
        inv.key("s").arg(1).arg(0);
        let e = inv.invoke_async::<i64>(&mut c).await.unwrap_err();
        assert_eq!(e.code(), Some("WRONGTYPE"), "{e}");
        assert_eq!(
            cmd::<String>(&mut c, &["GET", "s"]).await,
            "{\"a\":1}",
            "untouched"
        );
    }

    #[tokio::test]
    async fn del_if_eq_deletes_only_the_expected_value() {
        let (_s, mut c) = redis().await;
        cmd::<()>(&mut c, &["SET", "k", "v"]).await;
        assert_eq!(run::<i64>(&mut c, &DEL_IF_EQ, &["k"], &["other"]).await, 0);
        assert_eq!(
            cmd::<Option<String>>(&mut c, &["GET", "k"])
                .await
                .as_deref(),
            Some("v")
        );
        assert_eq!(run::<i64>(&mut c, &DEL_IF_EQ, &["k"], &["v"]).await, 1);
        assert_eq!(cmd::<Option<String>>(&mut c, &["GET", "k"]).await, None);
    }

    #[tokio::test]
    async fn lock_acquire_draws_increasing_fences() {
        let (_s, mut c) = redis().await;
        let keys = ["{l}lock", "{l}fence"];
        let take = async |c: &mut MultiplexedConnection, tok: &str| -> Option<u64> {
            run(c, &LOCK_ACQUIRE, &keys, &[tok, "10000"]).await
        };
        let first = take(&mut c, "a").await.expect("free");
        assert_eq!(take(&mut c, "b").await, None, "held");
        assert!(cmd::<i64>(&mut c, &["PTTL", "{l}lock"]).await > 0);
        assert_eq!(cmd::<i64>(&mut c, &["PTTL", "{l}fence"]).await, -1);
        assert_eq!(cmd::<u64>(&mut c, &["GET", "{l}fence"]).await, first);
        cmd::<()>(&mut c, &["DEL", "{l}lock"]).await;
        let second = take(&mut c, "b").await.expect("free");
        assert!(second > first);
        // The counter lost (a restart without persistence, an eviction): the next fence
        // still exceeds every earlier one.
        cmd::<()>(&mut c, &["DEL", "{l}lock", "{l}fence"]).await;
        let third = take(&mut c, "c").await.expect("free");
        assert!(third > second, "{third} after {second}");
        // A counter ahead of the clock keeps counting.
        let ahead = (third * 2).to_string();
        cmd::<()>(&mut c, &["DEL", "{l}lock"]).await;
        cmd::<()>(&mut c, &["SET", "{l}fence", &ahead]).await;
        assert_eq!(take(&mut c, "d").await, Some(third * 2 + 1));
    }

    #[tokio::test]
    async fn lock_extend_only_for_the_holder() {
        let (_s, mut c) = redis().await;
        cmd::<()>(&mut c, &["SET", "lock", "tok", "PX", "1000"]).await;
        let extend = async |c: &mut MultiplexedConnection, key: &str, tok: &str| -> i64 {
            run(c, &LOCK_EXTEND, &[key], &[tok, "60000"]).await
        };
        assert_eq!(extend(&mut c, "lock", "other").await, 0);
        assert!(cmd::<i64>(&mut c, &["PTTL", "lock"]).await <= 1000);
        assert_eq!(extend(&mut c, "lock", "tok").await, 1);
        assert!(cmd::<i64>(&mut c, &["PTTL", "lock"]).await > 1000);
        assert_eq!(extend(&mut c, "gone", "tok").await, 0);
    }

    /// A rate-limit step's reply: allowed, remaining, retry after ms, reset after ms.
    type Step = (u64, u64, u64, u64);

    #[tokio::test]
    async fn gcra_allows_a_burst_then_refuses() {
        let (_s, mut c) = redis().await;
        let step = async |c: &mut MultiplexedConnection, cost: &str| -> Step {
            run(c, &GCRA, &["rl"], &["2", "60000", cost]).await
        };
        let (a, rem, retry, _) = step(&mut c, "1").await;
        assert_eq!((a, rem, retry), (1, 1, 0));
        let (a, rem, _, _) = step(&mut c, "1").await;
        assert_eq!((a, rem), (1, 0));
        let (a, rem, retry, reset) = step(&mut c, "1").await;
        assert_eq!((a, rem), (0, 0));
        assert!(retry > 0 && retry <= 30_000, "retry {retry}");
        assert!(reset > 30_000 && reset <= 60_000, "reset {reset}");
        // The state expires when the bucket is full again.
        let pttl = cmd::<i64>(&mut c, &["PTTL", "rl"]).await;
        assert!(pttl > 30_000 && pttl <= 60_000, "pttl {pttl}");
        // Cost 0 peeks without spending.
        let tat: String = cmd(&mut c, &["GET", "rl"]).await;
        let (a, rem, _, _) = step(&mut c, "0").await;
        assert_eq!((a, rem), (1, 0), "a peek is allowed and spends nothing");
        assert_eq!(cmd::<String>(&mut c, &["GET", "rl"]).await, tat);
    }

    #[tokio::test]
    async fn sliding_window_counts_in_its_window() {
        let (_s, mut c) = redis().await;
        let step = async |c: &mut MultiplexedConnection| -> Step {
            run(c, &SLIDING_WINDOW, &["sw"], &["2", "60000", "1"]).await
        };
        let (a, rem, _, _) = step(&mut c).await;
        assert_eq!((a, rem), (1, 1));
        assert_eq!(step(&mut c).await.0, 1);
        let (a, rem, retry, reset) = step(&mut c).await;
        assert_eq!((a, rem), (0, 0));
        assert!(retry > 0 && retry == reset);
        let state: String = cmd(&mut c, &["GET", "sw"]).await;
        let parts: Vec<u64> = state.split(',').map(|p| p.parse().unwrap()).collect();
        assert_eq!(parts.len(), 3, "{state}");
        assert_eq!(parts[2], 2, "current count: {state}");
        let pttl = cmd::<i64>(&mut c, &["PTTL", "sw"]).await;
        assert!(pttl > 60_000 && pttl <= 120_000, "kept two windows: {pttl}");
    }

    /// Beats "a" (60 s), "b" (5 s) and "gone" (1 ms), then waits for "gone" to expire.
    async fn three_beats(c: &mut MultiplexedConnection) {
        for (member, ttl) in [("a", "60000"), ("b", "5000"), ("gone", "1")] {
            run::<i64>(c, &PRESENCE_BEAT, &["p"], &[member, ttl]).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    async fn list(c: &mut MultiplexedConnection) -> Vec<(String, u64)> {
        let flat: Vec<String> = run(c, &PRESENCE_LIST, &["p"], &[]).await;
        flat.chunks(2)
            .map(|p| (p[0].clone(), p[1].parse::<f64>().unwrap() as u64))
            .collect()
    }

    #[tokio::test]
    async fn presence_beat_keeps_the_set_as_long_as_its_last_member() {
        let (_s, mut c) = redis().await;
        three_beats(&mut c).await;
        let pttl = cmd::<i64>(&mut c, &["PTTL", "p"]).await;
        assert!(pttl > 5_000 && pttl <= 60_000, "pttl {pttl}");
        // A beat prunes members whose expiry passed.
        assert!(
            cmd::<Option<f64>>(&mut c, &["ZSCORE", "p", "gone"])
                .await
                .is_some()
        );
        run::<i64>(&mut c, &PRESENCE_BEAT, &["p"], &["a", "60000"]).await;
        assert_eq!(
            cmd::<Option<f64>>(&mut c, &["ZSCORE", "p", "gone"]).await,
            None
        );
    }

    #[tokio::test]
    async fn presence_list_returns_live_members_soonest_first() {
        let (_s, mut c) = redis().await;
        three_beats(&mut c).await;
        let l = list(&mut c).await;
        assert_eq!(
            l.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert!(l[0].1 <= 5_000 && l[0].1 > 4_000, "{l:?}");
        assert!(l[1].1 <= 60_000 && l[1].1 > 59_000, "{l:?}");
    }

    #[tokio::test]
    async fn presence_leave_says_whether_the_member_was_alive() {
        let (_s, mut c) = redis().await;
        three_beats(&mut c).await;
        for (member, was_alive) in [("a", 1), ("a", 0), ("gone", 0), ("b", 1)] {
            let n: i64 = run(&mut c, &PRESENCE_LEAVE, &["p"], &[member]).await;
            assert_eq!(n, was_alive, "{member}");
        }
        assert!(list(&mut c).await.is_empty());
    }

    /// Claimed messages: id, payload, deliveries.
    type Claimed = Vec<(String, String, u64)>;

    /// Claims up to 10 messages of `{q}s` for `consumer` (2 deliveries at most).
    async fn claim(c: &mut MultiplexedConnection, consumer: &str, idle_ms: &str) -> Claimed {
        run(
            c,
            &QUEUE_CLAIM,
            &["{q}s", "{q}dlq"],
            &[consumer, "10", idle_ms, "2"],
        )
        .await
    }

    #[tokio::test]
    async fn queue_claim_redelivers_then_dead_letters() {
        let (_s, mut c) = redis().await;
        assert!(claim(&mut c, "c1", "1").await.is_empty(), "no stream yet");
        let id: String = cmd(&mut c, &["XADD", "{q}s", "*", "data", "m1"]).await;
        let first = claim(&mut c, "c1", "1").await;
        assert_eq!(first, vec![(id.clone(), "m1".to_owned(), 1)]);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let again = claim(&mut c, "c2", "1").await;
        assert_eq!(again, vec![(id.clone(), "m1".to_owned(), 2)], "redelivered");
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(claim(&mut c, "c1", "1").await.is_empty(), "dead-lettered");
        assert_eq!(cmd::<u64>(&mut c, &["XLEN", "{q}s"]).await, 0);
        let dlq: Vec<(String, Vec<(String, String)>)> =
            cmd(&mut c, &["XRANGE", "{q}dlq", "-", "+"]).await;
        assert_eq!(dlq.len(), 1);
        let fields = &dlq[0].1;
        for (k, v) in [("data", "m1"), ("id", id.as_str()), ("deliveries", "2")] {
            assert!(
                fields.contains(&(k.to_owned(), v.to_owned())),
                "{k}: {fields:?}"
            );
        }
    }

    #[tokio::test]
    async fn queue_ack_removes_pending_messages() {
        let (_s, mut c) = redis().await;
        let id: String = cmd(&mut c, &["XADD", "{q}s", "*", "data", "m1"]).await;
        assert_eq!(claim(&mut c, "c1", "60000").await.len(), 1);
        assert_eq!(run::<u64>(&mut c, &QUEUE_ACK, &["{q}s"], &[&id]).await, 1);
        assert_eq!(run::<u64>(&mut c, &QUEUE_ACK, &["{q}s"], &[&id]).await, 0);
        assert_eq!(cmd::<u64>(&mut c, &["XLEN", "{q}s"]).await, 0);
        assert!(claim(&mut c, "c1", "0").await.is_empty());
    }
}
