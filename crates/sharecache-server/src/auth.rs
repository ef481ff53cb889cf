//! Credentials: bearer tokens, stored only as SHA-256 hashes and compared in constant time.
//!
//! Tokens are 256 random bits, so a plain SHA-256 (no salt, no stretching) is enough: a
//! hash cannot be reversed and a token cannot be guessed. The presented token is hashed
//! and compared with *every* configured hash using `subtle`, without an early exit, so the
//! time taken does not depend on which credential matched or how much of a hash did.
//! Tokens never appear in logs; a credential is logged by its service name.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::config::Config;

/// Longest token accepted in a header (longer ones are refused before hashing).
pub const MAX_TOKEN_LEN: usize = 256;

/// Who is calling. Services and viewers are named, not numbered: a principal a request
/// (or a dashboard login) holds keeps meaning the same credential after the credentials
/// are reloaded (SIGHUP), and one whose credential was removed has no grants left.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// The admin credential: every namespace, the dashboard, stats of all namespaces.
    Admin,
    /// A service credential, confined to its namespaces.
    Service(Arc<str>),
    /// A read-only operator (`[[viewers]]`): reads every namespace and the store-wide
    /// figures, changes nothing.
    Viewer(Arc<str>),
}

impl Principal {
    /// Display name, for logs, metrics and the audit log.
    pub fn name(&self) -> &str {
        match self {
            Principal::Admin => "admin",
            Principal::Service(n) | Principal::Viewer(n) => n,
        }
    }
}

/// What a principal may do, as the dashboard shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Sees everything, changes nothing.
    Viewer,
    /// Its granted namespaces only.
    Service,
}

/// One service's grants.
#[derive(Debug, Clone)]
pub struct Grants {
    /// Service name.
    pub name: String,
    read: HashSet<String>,
    write: HashSet<String>,
}

impl Grants {
    /// May read `ns` (granted read or write).
    pub fn can_read(&self, ns: &str) -> bool {
        self.read.contains(ns) || self.write.contains(ns)
    }

    /// May write `ns`.
    pub fn can_write(&self, ns: &str) -> bool {
        self.write.contains(ns)
    }

    /// Every namespace it may write, sorted.
    pub fn writable(&self) -> Vec<String> {
        let mut v: Vec<String> = self.write.iter().cloned().collect();
        v.sort();
        v
    }

    /// Every namespace it may read, sorted.
    pub fn readable(&self) -> Vec<String> {
        let mut v: Vec<String> = self.read.union(&self.write).cloned().collect();
        v.sort();
        v
    }
}

/// Every credential the service accepts.
#[derive(Debug, Clone)]
pub struct Credentials {
    admin: [u8; 32],
    hashes: Vec<[u8; 32]>,
    /// The services' names, in the order of `hashes` and `grants`.
    names: Vec<Arc<str>>,
    grants: Vec<Grants>,
    viewer_hashes: Vec<[u8; 32]>,
    viewers: Vec<Arc<str>>,
    /// Every namespace granted to some service, sorted.
    namespaces: Vec<String>,
}

/// Makes a new random token: `sc_` and 64 hex characters (256 bits).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("sc_{}", hex::encode(bytes))
}

/// SHA-256 of a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_hash(h: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    // Validated as 64 hex characters when the config was parsed.
    hex::decode_to_slice(h, &mut out).expect("validated hex hash");
    out
}

/// The admin hash from the state directory, or a newly generated token whose hash is
/// saved there (the token itself is returned to be shown once, never stored).
pub fn load_or_create_admin(state_dir: &Path) -> anyhow::Result<([u8; 32], Option<String>)> {
    let path = state_dir.join("admin_token.sha256");
    if let Ok(text) = fs::read_to_string(&path) {
        let h = text.trim();
        anyhow::ensure!(
            h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()),
            "{} is not a SHA-256 hex hash; delete it to generate a new admin token",
            path.display()
        );
        return Ok((parse_hash(h), None));
    }
    fs::create_dir_all(state_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the state directory {}: {e}; set [server] state_dir or [admin] token_sha256",
            state_dir.display()
        )
    })?;
    let token = new_token();
    let hash = hash_token(&token);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    writeln!(f, "{}", hex::encode(hash))?;
    Ok((hash, Some(token)))
}

impl Credentials {
    /// Builds the credential set from a validated config and the admin hash.
    pub fn new(cfg: &Config, admin: [u8; 32]) -> Self {
        let mut hashes = Vec::new();
        let mut grants = Vec::new();
        for s in &cfg.services {
            hashes.push(parse_hash(s.token_sha256.get_ref()));
            grants.push(Grants {
                name: s.name.get_ref().clone(),
                read: s.read.iter().map(|n| n.get_ref().clone()).collect(),
                write: s.write.iter().map(|n| n.get_ref().clone()).collect(),
            });
        }
        let mut namespaces: Vec<String> = grants.iter().flat_map(Grants::readable).collect();
        namespaces.sort();
        namespaces.dedup();
        Self {
            admin,
            hashes,
            names: grants.iter().map(|g| Arc::from(g.name.as_str())).collect(),
            grants,
            viewer_hashes: cfg
                .viewers
                .iter()
                .map(|v| parse_hash(v.token_sha256.get_ref()))
                .collect(),
            viewers: cfg
                .viewers
                .iter()
                .map(|v| Arc::from(v.name.get_ref().as_str()))
                .collect(),
            namespaces,
        }
    }

    /// Whether `p` is still one of these credentials (a dashboard login outlives a
    /// reload that removed its service or viewer).
    pub fn knows(&self, p: &Principal) -> bool {
        match p {
            Principal::Admin => true,
            Principal::Service(n) => self.names.contains(n),
            Principal::Viewer(n) => self.viewers.contains(n),
        }
    }

    /// How many services and viewers it holds.
    pub fn counts(&self) -> (usize, usize) {
        (self.grants.len(), self.viewers.len())
    }

    /// The admin hash from the config, if it has one.
    pub fn configured_admin(cfg: &Config) -> Option<[u8; 32]> {
        cfg.admin
            .token_sha256
            .as_ref()
            .map(|h| parse_hash(h.get_ref()))
    }

    /// Who holds `token`, if anyone. Constant time in the token's content.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let presented = hash_token(token);
        let is_admin = presented.ct_eq(&self.admin);
        // Index + 1 of the matching service, 0 for none; selected without branching.
        let mut found = 0u64;
        for (i, h) in self.hashes.iter().enumerate() {
            found = u64::conditional_select(&found, &(i as u64 + 1), presented.ct_eq(h));
        }
        let mut viewer = 0u64;
        for (i, h) in self.viewer_hashes.iter().enumerate() {
            viewer = u64::conditional_select(&viewer, &(i as u64 + 1), presented.ct_eq(h));
        }
        if bool::from(is_admin) {
            Some(Principal::Admin)
        } else if found > 0 {
            Some(Principal::Service(self.names[found as usize - 1].clone()))
        } else if viewer > 0 {
            Some(Principal::Viewer(self.viewers[viewer as usize - 1].clone()))
        } else {
            None
        }
    }

    /// The grants of a service principal (`None` for the admin and viewers, who see
    /// every namespace).
    pub fn grants(&self, p: &Principal) -> Option<&Grants> {
        match p {
            Principal::Admin | Principal::Viewer(_) => None,
            Principal::Service(name) => self.grants.iter().find(|g| *g.name == **name),
        }
    }

    /// Whether `p` may read (or, with `write`, change) namespace `ns`. The one place that
    /// decides it: the namespace extractors call it for every route.
    pub fn may(&self, p: &Principal, ns: &str, write: bool) -> bool {
        match p {
            Principal::Admin => true,
            // A viewer removed by a reload sees nothing (its login may outlive it).
            Principal::Viewer(name) => !write && self.viewers.contains(name),
            Principal::Service(_) => self.grants(p).is_some_and(|g| {
                if write {
                    g.can_write(ns)
                } else {
                    g.can_read(ns)
                }
            }),
        }
    }

    /// The role of a principal.
    pub fn role(p: &Principal) -> Role {
        match p {
            Principal::Admin => Role::Admin,
            Principal::Viewer(_) => Role::Viewer,
            Principal::Service(_) => Role::Service,
        }
    }

    /// Every namespace granted to some service, sorted and deduplicated.
    pub fn all_namespaces(&self) -> &[String] {
        &self.namespaces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> (Credentials, String, String) {
        let admin = new_token();
        let auth = new_token();
        let text = format!(
            "[[services]]\nname = \"auth\"\ntoken_sha256 = \"{}\"\nread = [\"shared\"]\nwrite = [\"auth\"]\n",
            hex::encode(hash_token(&auth))
        );
        let cfg = Config::parse("t", &text).unwrap();
        (Credentials::new(&cfg, hash_token(&admin)), admin, auth)
    }

    #[test]
    fn tokens_map_to_principals() {
        let (c, admin, auth) = creds();
        assert_eq!(c.authenticate(&admin), Some(Principal::Admin));
        let p = c.authenticate(&auth).unwrap();
        let g = c.grants(&p).unwrap();
        assert!(g.can_write("auth") && g.can_read("auth") && g.can_read("shared"));
        assert!(!g.can_write("shared") && !g.can_read("user") && !g.can_read("auth2"));
        assert_eq!(g.readable(), vec!["auth", "shared"]);
        for bad in [
            "",
            "sc_",
            &auth[..auth.len() - 1],
            &format!("{auth}x"),
            &"a".repeat(10_000),
            "\0",
        ] {
            assert_eq!(c.authenticate(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_viewer_reads_everything_and_writes_nothing() {
        let (admin, viewer) = (new_token(), new_token());
        let text = format!(
            "[[viewers]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\n",
            hex::encode(hash_token(&viewer))
        );
        let cfg = Config::parse("t", &text).unwrap();
        let c = Credentials::new(&cfg, hash_token(&admin));
        let p = c.authenticate(&viewer).unwrap();
        assert_eq!((p.name(), Credentials::role(&p)), ("ops", Role::Viewer));
        assert!(c.may(&p, "anything", false) && !c.may(&p, "anything", true));
        assert!(c.may(&Principal::Admin, "x", true));
        // A viewer reusing another credential's token, or a name twice, is refused.
        let dup = format!(
            "[admin]\ntoken_sha256 = \"{0}\"\n[[viewers]]\nname = \"ops\"\ntoken_sha256 = \"{0}\"\n",
            hex::encode(hash_token(&admin))
        );
        assert!(Config::parse("t", &dup).is_err());
        let twice = format!("{text}{text}");
        assert!(Config::parse("t", &twice).is_err());
    }

    #[test]
    fn tokens_are_random_and_long() {
        let a = new_token();
        assert_eq!(a.len(), 67);
        assert_ne!(a, new_token());
    }

    #[test]
    fn admin_token_is_generated_once_and_only_its_hash_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (h1, token) = load_or_create_admin(dir.path()).unwrap();
        let token = token.expect("first start shows a token");
        assert_eq!(h1, hash_token(&token));
        let saved = fs::read_to_string(dir.path().join("admin_token.sha256")).unwrap();
        assert!(
            !saved.contains(&token[3..]),
            "the token itself must not be stored"
        );
        let (h2, again) = load_or_create_admin(dir.path()).unwrap();
        assert_eq!(
            (h2, again),
            (h1, None),
            "second start reuses the hash and shows nothing"
        );
        fs::write(dir.path().join("admin_token.sha256"), "garbage").unwrap();
        assert!(load_or_create_admin(dir.path()).is_err());
    }
}
