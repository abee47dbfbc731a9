//! Argon2id password hashing that reuses its working memory.
//!
//! Each hash with the default parameters (m = 19 MiB, t = 2, p = 1) works in a 19 MiB block
//! array. Allocated per hash, that array came from whichever glibc arena the blocking thread
//! used, and glibc keeps freed memory in each arena (its mmap threshold rises to 32 MiB after
//! the first free, so a 19 MiB block is no longer given back), so every blocking thread that
//! ever hashed kept ~19-38 MiB: 780 MB after a few hundred sign-ups. Here the arrays are kept
//! and reused instead, at most one per hashing permit, so hashing costs a fixed 19 MiB per
//! permit and nothing grows.

use std::sync::Mutex;

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::input::Password;

/// Hashes and verifies passwords; keeps up to `keep` working arrays for reuse.
pub struct Passwords {
    spare: Mutex<Vec<Vec<Block>>>,
    keep: usize,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords").field("keep", &self.keep).finish_non_exhaustive()
    }
}

impl Passwords {
    /// `keep` should be the number of hashes that may run at once (the hashing permits): then
    /// every hash finds a spare array after the first few.
    pub fn new(keep: usize) -> Self {
        Self { spare: Mutex::new(Vec::new()), keep: keep.max(1) }
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) for a new password.
    pub fn hash(&self, password: &Password) -> Result<String, String> {
        let salt = SaltString::generate(&mut OsRng);
        self.compute(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::default(),
            password.expose().as_bytes(),
            (&salt).into(),
        )
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
    }

    /// Whether `password` matches the stored PHC string `hash` (with its own parameters).
    pub fn verify(&self, password: &Password, hash: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else { return false };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else { return false };
        let Ok(version) = parsed.version.map(Version::try_from).transpose() else { return false };
        let Ok(params) = Params::try_from(&parsed) else { return false };
        let computed = self.compute(algorithm, version.unwrap_or_default(), params, password.expose().as_bytes(), salt);
        // `Output`'s equality is constant-time.
        computed.is_ok_and(|c| c.hash == Some(expected))
    }

    /// What `PasswordHasher::hash_password` does, but in a reused block array.
    fn compute<'a>(
        &self,
        algorithm: Algorithm,
        version: Version,
        params: Params,
        password: &[u8],
        salt: Salt<'a>,
    ) -> argon2::password_hash::Result<PasswordHash<'a>> {
        let mut salt_buf = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_buf)?;
        let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let mut memory = self.take(params.block_count());
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let output = Output::init_with(output_len, |out| {
            Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut memory)?)
        });
        // The array still holds values derived from the password; it stays inside this process
        // and is overwritten by the next hash, like any freed allocation would be.
        self.give_back(memory);
        Ok(PasswordHash {
            algorithm: algorithm.ident(),
            version: Some(version.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(salt),
            hash: Some(output?),
        })
    }

    fn take(&self, blocks: usize) -> Vec<Block> {
        let reused = self.spare.lock().ok().and_then(|mut spare| {
            let i = spare.iter().position(|m| m.len() == blocks)?;
            Some(spare.swap_remove(i))
        });
        reused.unwrap_or_else(|| vec![Block::default(); blocks])
    }

    fn give_back(&self, memory: Vec<Block>) {
        if let Ok(mut spare) = self.spare.lock()
            && spare.len() < self.keep
        {
            spare.push(memory);
        }
    }
}

/// An Argon2id hash of a random string nobody knows, with the default parameters.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2hvZWJveGR1bW15c2FsdA$WlDfNvDnVHl0BRHHtVmnpgn6mK2mA+8tDT4hXLFD4zI";

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHasher as _;

    fn password(s: &str) -> Password {
        Password::parse(s.into()).expect("valid")
    }

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let passwords = Passwords::new(1);
        let p = password("correct horse battery");
        let hash = passwords.hash(&p).expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(passwords.verify(&p, &hash));
        assert!(!passwords.verify(&password("wrong horse battery"), &hash));
        assert!(!passwords.verify(&p, "not a hash"));
        assert!(!passwords.verify(&p, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ"), "no hash part");
    }

    #[test]
    fn hashes_made_by_the_argon2_crate_itself_still_verify() {
        // Accounts created before the memory was reused hold hashes from `hash_password`.
        let salt = SaltString::generate(&mut OsRng);
        let old = Argon2::default().hash_password(b"correct horse battery", &salt).expect("hash").to_string();
        let passwords = Passwords::new(1);
        assert!(passwords.verify(&password("correct horse battery"), &old));
        assert!(!passwords.verify(&password("correct horse batterY"), &old));
    }

    #[test]
    fn the_working_memory_is_kept_for_reuse_up_to_the_bound() {
        let passwords = Passwords::new(1);
        passwords.hash(&password("correct horse battery")).expect("hash");
        passwords.give_back(vec![Block::default(); 8]);
        let spare = passwords.spare.lock().expect("lock");
        assert_eq!(spare.len(), 1, "one array kept, the extra one freed");
        assert_eq!(spare[0].len(), Params::default().block_count());
    }

    #[test]
    fn the_dummy_hash_parses_so_unknown_emails_cost_a_real_verification() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!Passwords::new(1).verify(&password("correct horse battery"), DUMMY_HASH));
    }
}
