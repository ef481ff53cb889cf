//! `sharecache token`: make tokens and the hashes the config stores.

use std::io::Read;

use clap::Subcommand;

use crate::auth::{hash_token, new_token};

/// Token subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Generate a new token and print it with its token_sha256 line.
    New,
    /// Print the token_sha256 of a token read from standard input.
    Hash,
}

/// Runs a token subcommand.
pub fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::New => {
            let t = new_token();
            println!("token (give it to the service; it is not stored anywhere): {t}");
            println!("token_sha256 = \"{}\"", hex::encode(hash_token(&t)));
        }
        TokenCommand::Hash => {
            let mut s = String::new();
            std::io::stdin().take(4096).read_to_string(&mut s)?;
            let t = s.trim();
            anyhow::ensure!(
                !t.is_empty(),
                "no token on standard input; try: echo \"$TOKEN\" | sharecache token hash"
            );
            println!("token_sha256 = \"{}\"", hex::encode(hash_token(t)));
        }
    }
    Ok(())
}
