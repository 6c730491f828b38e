//! Where a `dns` probe's queries go (the probe's own wire path or a hickory
//! client); the DNSSEC validator (`validate`) fetches through the same one.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use hickory_resolver::net::DnsHandle;
use hickory_resolver::net::NetError;
use hickory_resolver::net::client::Client;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::op::{DnsRequest, DnsRequestOptions, DnsResponse, Query};
use hickory_resolver::proto::rr::{Name, RecordType};

use super::wire::Wire;

/// Where the probe's queries go: the probe's own UDP/TCP path, or a hickory
/// client for DNS over TLS and HTTPS. The validator fetches through it too.
#[derive(Clone)]
pub enum Upstream {
    /// UDP (TCP on truncation) or TCP.
    Wire(Wire),
    /// DoT or DoH; the flag sets CD on every query (validating ourselves).
    Client(Client<TokioRuntimeProvider>, bool),
}

impl DnsHandle for Upstream {
    type Response = Pin<Box<dyn Stream<Item = Result<DnsResponse, NetError>> + Send>>;
    type Runtime = TokioRuntimeProvider;

    fn send(&self, mut request: DnsRequest) -> Self::Response {
        match self {
            Upstream::Wire(w) => w.send(request),
            Upstream::Client(c, cd) => {
                // The probe validates itself: a validating resolver must hand
                // over bogus data rather than answer SERVFAIL.
                request.metadata.checking_disabled = *cd;
                Box::pin(c.send(request))
            }
        }
    }
}

impl Upstream {
    /// One unvalidated query with DO set, for the anchors and the diagnosis;
    /// `None` when it fails (the validator reports that failure itself).
    pub async fn fetch(&self, name: &Name, rtype: RecordType) -> Option<DnsResponse> {
        let mut options = DnsRequestOptions::default();
        options.edns_set_dnssec_ok = true;
        options.edns_payload_len = 1232;
        let mut s = self.lookup(Query::query(name.clone(), rtype), options);
        s.next().await.and_then(Result::ok)
    }
}
