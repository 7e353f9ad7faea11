//! A project's place on the host daemon's shared listener
//! ([`crate::listeners`]): joining it (or, on the default address, the one
//! of the next port where its hosts are free), and leaving it when dropped.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use cove_runtime::plan::Plan;

use super::{ProjectGateway, http_threads, query_log, tried};
use crate::listeners::{Joining, Listeners, Refused};

/// Where a project of the host's daemon serves its HTTP routes: the
/// daemon's shared listeners ([`crate::listeners`]).
#[derive(Clone)]
pub struct Sharing {
    pub listeners: Arc<Listeners>,
    /// The project's key (its state directory).
    pub key: Arc<str>,
}

/// A project's place on a shared listener; it leaves when dropped.
pub(super) struct Membership {
    pub(super) sharing: Sharing,
    /// The listener's address (the plan's, or the one above it it fell
    /// back to) and the address bound there.
    pub(super) at: SocketAddr,
    pub(super) bound: SocketAddr,
    hosts: BTreeSet<String>,
    /// Replaced by a membership of the same listener: nothing to leave.
    stays: bool,
}

impl Drop for Membership {
    fn drop(&mut self) {
        if !self.stays {
            self.sharing.listeners.leave(self.at, &self.sharing.key);
        }
    }
}

impl ProjectGateway {
    /// Serves `plan`'s HTTP routes on the shared listener of its address
    /// (or, when that is the default one and a host is taken there, of the
    /// next port above it); stays where it is when nothing changed.
    pub(super) fn join(&mut self, sharing: &Sharing, plan: &Plan) -> Result<(), String> {
        let g = &plan.gateway;
        let hosts: BTreeSet<String> = g
            .routes
            .iter()
            .filter(|r| r.listen.is_none())
            .filter_map(|r| r.host.clone())
            .collect();
        if let Some(m) = &self.member
            && m.hosts == hosts
            && (m.at == g.listen || g.default_listen)
        {
            return Ok(());
        }
        let label = crate::about::About::read(std::path::Path::new(&*sharing.key))
            .map_or_else(|| format!("in {}", sharing.key), |a| a.to_string());
        let mut first_refusal = None;
        for at in tried(g.listen, g.default_listen) {
            let joining = Joining {
                key: &sharing.key,
                label: &label,
                hosts: &hosts,
                log: self.access_log.clone(),
                query: query_log(g.access_query),
                max_connections: g.max_connections,
                threads: http_threads(),
            };
            match sharing.listeners.join(at, joining) {
                Ok(bound) => {
                    // The old place is left (when it is another) once the
                    // new one serves.
                    let old = self.member.replace(Membership {
                        sharing: sharing.clone(),
                        at,
                        bound,
                        hosts,
                        stays: false,
                    });
                    if let Some(mut old) = old {
                        // The same listener: still a member there.
                        old.stays = old.at == at;
                    }
                    return Ok(());
                }
                Err(e) => {
                    first_refusal.get_or_insert(e);
                }
            }
        }
        Err(match first_refusal {
            Some(Refused::Host { host, holder }) => format!(
                "the gateway cannot listen on {}: the address is in use, by the gateway of cove project {holder}, which serves `{host}` there",
                g.listen
            ),
            Some(Refused::Bind(std::io::ErrorKind::AddrInUse, _)) => format!(
                "the gateway cannot listen on {}: the address is in use, by {}",
                g.listen,
                crate::holder::describe(g.listen)
                    .unwrap_or_else(|| "another cove app, or another program".into())
            ),
            Some(Refused::Bind(_, e)) => format!("the gateway cannot listen on {}: {e}", g.listen),
            None => format!("the gateway cannot listen on {}", g.listen),
        })
    }
}

/// Whether `plan`'s HTTP routes may go on a shared listener: each names
/// its host (a route for any host would take other apps' requests).
pub(super) fn shares(plan: &Plan) -> bool {
    plan.gateway
        .routes
        .iter()
        .filter(|r| r.listen.is_none())
        .all(|r| r.host.is_some())
}
