//! One-time tokens for streaming URLs, as kubelet's request cache hands
//! them out: 8 random bytes in URL-safe base64, valid for a minute, used
//! at most once, at most 1000 outstanding.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_cri::v1::{AttachRequest, ExecRequest, PortForwardRequest};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::time::Instant;

use super::error::RequestError;

/// A CRI request waiting for its client to connect.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CachedRequest {
    Exec(ExecRequest),
    Attach(AttachRequest),
    PortForward(PortForwardRequest),
}

#[derive(Debug)]
pub(crate) struct RequestCache {
    ttl: Duration,
    max_in_flight: usize,
    random: SystemRandom,
    entries: Mutex<HashMap<String, (Instant, CachedRequest)>>,
}

impl RequestCache {
    pub(crate) fn new(ttl: Duration, max_in_flight: usize) -> Self {
        Self {
            ttl,
            max_in_flight,
            random: SystemRandom::new(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Stores `request` under a fresh token and returns the token.
    pub(crate) fn insert(&self, request: CachedRequest) -> Result<String, RequestError> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (expires, _)| *expires > now);
        if entries.len() >= self.max_in_flight {
            return Err(RequestError::TooManyInFlight(self.max_in_flight));
        }
        loop {
            let mut bytes = [0u8; 8];
            self.random
                .fill(&mut bytes)
                .map_err(|_| RequestError::NoRandomness)?;
            let token = URL_SAFE_NO_PAD.encode(bytes);
            if !entries.contains_key(&token) {
                entries.insert(token.clone(), (now + self.ttl, request));
                return Ok(token);
            }
        }
    }

    /// Takes the request stored under `token`, if it has not expired.
    /// A token works once, whatever happens next.
    pub(crate) fn consume(&self, token: &str) -> Option<CachedRequest> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (expires, request) = entries.remove(token)?;
        (Instant::now() <= expires).then_some(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> CachedRequest {
        CachedRequest::Exec(ExecRequest {
            container_id: "c1".into(),
            cmd: vec!["ls".into()],
            stdout: true,
            ..Default::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_work_once_and_only_until_they_expire() {
        let cache = RequestCache::new(Duration::from_secs(60), 10);
        let token = cache.insert(exec()).expect("token");
        assert_eq!(token.len(), 11);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(cache.consume(&token), Some(exec()));
        assert_eq!(cache.consume(&token), None);

        let token = cache.insert(exec()).expect("token");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(cache.consume(&token), None);
    }

    #[tokio::test(start_paused = true)]
    async fn outstanding_tokens_are_capped_until_they_expire() {
        let cache = RequestCache::new(Duration::from_secs(60), 2);
        cache.insert(exec()).expect("1");
        cache.insert(exec()).expect("2");
        assert!(matches!(
            cache.insert(exec()),
            Err(RequestError::TooManyInFlight(2))
        ));
        tokio::time::advance(Duration::from_secs(61)).await;
        cache.insert(exec()).expect("expired ones make room");
    }
}
