//! This server's table on the host: the masquerade of its public IPs leaving the host, and
//! the guard that keeps its guests off the host and the networks attached to it.
//!
//! Everything a guest sends through the host arrives by one of this server's uplinks (the
//! host ends of its VPCs' veth pairs, the set `uplinks`). From there:
//! - to the host itself (the `input` hook: any of its addresses, on any interface): dropped,
//!   but for replies to connections the host opened and the operator's allowed CIDRs;
//! - through the host (`forward`): replies pass; this server's other VPCs' public IPs pass
//!   (instances reach each other's public IPs, as in EC2); other servers' VPCs are dropped;
//!   then the operator's allowed CIDRs pass, and the `denied` networks are dropped: those
//!   attached to the host (its routes without a gateway) and the private, link-local,
//!   CGNAT, loopback, multicast and reserved ranges wherever they are routed. The rest, what
//!   lies beyond the host's gateways, is the outside: it passes, masqueraded.
//!
//! The table is rendered whole by [`render`] (a pure function) and replaced in one `nft -f`
//! transaction, so the guard never has a gap.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The prefix of each server's host table; the rest names the server (`mod.rs`).
pub const TABLE_PREFIX: &str = "nimbus_host_";

/// The prefix of every uplink's host end, whichever server made it.
pub const UPLINK_PREFIX: &str = "nv";

/// Ranges no guest reaches through the host, however the host routes them: this network,
/// RFC 1918, CGNAT, loopback, link-local, multicast and reserved (with the broadcast).
const ALWAYS_DENIED: [&str; 9] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// What a server's host table holds.
pub struct HostTable<'a> {
    pub name: &'a str,
    pub pool: Ipv4Net,
    /// The host ends of this server's uplinks.
    pub uplinks: &'a BTreeSet<String>,
    /// Networks guests may not reach through the host ([`denied_networks`]).
    pub denied: &'a [Ipv4Net],
    /// The operator's exceptions (`[network] reachable_from_guests`).
    pub allowed: &'a [Ipv4Net],
    /// Networks beyond the host that route the pool back to it (`public_ip_routed_networks`):
    /// what public IPs send there keeps its source instead of being masqueraded.
    pub routed_back: &'a [Ipv4Net],
}

/// The `nft -f` script that replaces the table with `table`.
pub fn render(table: &HostTable) -> String {
    let name = table.name;
    let uplinks = table
        .uplinks
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>();
    let allowed = table
        .allowed
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>();
    let denied = table
        .denied
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>();
    let pool = table.pool.trunc();
    let keep_source = if table.routed_back.is_empty() {
        String::new()
    } else {
        let networks: Vec<String> = table.routed_back.iter().map(Ipv4Net::to_string).collect();
        format!(
            "    ip saddr {pool} ip daddr {{ {} }} return\n",
            networks.join(", ")
        )
    };
    format!(
        "table inet {name}\n\
         delete table inet {name}\n\
         table inet {name} {{\n\
         \x20 set uplinks {{\n    type ifname;\n{uplinks}  }}\n\
         \x20 set allowed {{\n    type ipv4_addr; flags interval;\n{allowed}  }}\n\
         \x20 set denied {{\n    type ipv4_addr; flags interval;\n{denied}  }}\n\
         \x20 chain postrouting {{\n\
         \x20   type nat hook postrouting priority 100; policy accept;\n\
         {keep_source}\
         \x20   ip saddr {pool} oifname != \"{UPLINK_PREFIX}*\" masquerade\n\
         \x20 }}\n\
         \x20 chain input {{\n\
         \x20   type filter hook input priority 0; policy accept;\n\
         \x20   iifname @uplinks jump guest_to_host\n\
         \x20 }}\n\
         \x20 chain forward {{\n\
         \x20   type filter hook forward priority 0; policy accept;\n\
         \x20   iifname @uplinks jump guest_through_host\n\
         \x20 }}\n\
         \x20 chain guest_to_host {{\n\
         \x20   ct state established,related accept\n\
         \x20   ip daddr @allowed accept\n\
         \x20   drop\n\
         \x20 }}\n\
         \x20 chain guest_through_host {{\n\
         \x20   ct state established,related accept\n\
         \x20   oifname @uplinks accept\n\
         \x20   oifname \"{UPLINK_PREFIX}*\" drop\n\
         \x20   meta nfproto != ipv4 drop\n\
         \x20   ip daddr @allowed accept\n\
         \x20   ip daddr @denied drop\n\
         \x20 }}\n\
         }}\n",
        uplinks = elements(&uplinks),
        allowed = elements(&allowed),
        denied = elements(&denied),
    )
}

/// A set's `elements` line, or nothing for an empty set (nft refuses `elements = { }`).
fn elements(items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!("    elements = {{ {} }}\n", items.join(", "))
    }
}

/// One route of `ip -4 -j route show table all`: its destination, if it is a unicast route
/// (not local, broadcast, unreachable…), and whether it goes through a gateway.
struct Route {
    dst: Ipv4Net,
    dev: String,
    via_gateway: bool,
    unicast: bool,
}

fn parse_route(route: &serde_json::Value) -> Option<Route> {
    let dst = route["dst"].as_str()?;
    let dst = match dst {
        "default" => Ipv4Net::default(),
        _ if dst.contains('/') => dst.parse().ok()?,
        _ => Ipv4Net::from(dst.parse::<Ipv4Addr>().ok()?),
    };
    let unicast = route["type"].as_str().is_none_or(|t| t == "unicast");
    Some(Route {
        dst,
        dev: route["dev"].as_str().unwrap_or_default().to_owned(),
        via_gateway: !route["gateway"].is_null()
            || !route["via"].is_null()
            || !route["nexthops"].is_null(),
        unicast,
    })
}

/// The networks guests may not reach through the host: [`ALWAYS_DENIED`] and the networks
/// attached to the host, from its routes (`ip -4 -j route show table all`): the
/// destinations of unicast routes without a gateway, but the default route (a host whose
/// default route has none would otherwise deny the whole outside), the loopback's, and the
/// uplinks' (public IPs, which the forward chain judges by uplink).
pub fn denied_networks(routes: &[serde_json::Value]) -> Vec<Ipv4Net> {
    let attached = routes.iter().filter_map(parse_route).filter(|r| {
        r.unicast
            && !r.via_gateway
            && r.dst.prefix_len() > 0
            && r.dev != "lo"
            && !r.dev.starts_with(UPLINK_PREFIX)
    });
    let mut networks: Vec<Ipv4Net> = ALWAYS_DENIED
        .iter()
        .filter_map(|n| n.parse().ok())
        .chain(attached.map(|r| r.dst.trunc()))
        .collect();
    networks = Ipv4Net::aggregate(&networks);
    networks.sort();
    networks
}

/// The parts of `pool` the host's routes give to something else than `own` devices (another
/// server's uplinks, a leftover's, a network of the host): addresses taken there must not
/// be handed out here, or the host would route them away from this server's guests. Local
/// addresses of the host count too.
pub fn held_networks(
    routes: &[serde_json::Value],
    pool: Ipv4Net,
    own: &BTreeSet<String>,
) -> Vec<Ipv4Net> {
    let pool = pool.trunc();
    routes
        .iter()
        .filter_map(parse_route)
        .filter(|r| r.dst.prefix_len() > pool.prefix_len() && pool.contains(&r.dst))
        .filter(|r| !own.contains(&r.dev))
        .map(|r| r.dst.trunc())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Vec<serde_json::Value> {
        serde_json::from_str(
            r#"[
            {"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]},
            {"dst":"192.0.2.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"192.0.2.2","flags":[]},
            {"dst":"203.0.113.0/24","gateway":"198.51.100.2","dev":"inet0","flags":[]},
            {"dst":"198.51.100.0/30","dev":"inet0","protocol":"kernel","scope":"link","flags":[]},
            {"dst":"10.250.0.0/24","dev":"lan0","protocol":"kernel","scope":"link","flags":[]},
            {"dst":"198.19.7.1","dev":"nvaaaa","scope":"link","flags":[]},
            {"dst":"198.19.7.2","dev":"nvbbbb","scope":"link","flags":[]},
            {"type":"unreachable","dst":"198.18.0.0/24","flags":[]},
            {"type":"local","dst":"127.0.0.0/8","dev":"lo","table":"local","protocol":"kernel","scope":"host","prefsrc":"127.0.0.1","flags":[]},
            {"type":"local","dst":"198.19.7.9","dev":"dummy0","table":"local","protocol":"kernel","scope":"host","flags":[]},
            {"type":"broadcast","dst":"192.0.2.255","dev":"eth0","table":"local","protocol":"kernel","scope":"link","flags":[]}
            ]"#,
        )
        .expect("routes")
    }

    fn nets(list: &[&str]) -> Vec<Ipv4Net> {
        list.iter().map(|n| n.parse().expect("CIDR")).collect()
    }

    #[test]
    fn attached_and_private_networks_are_denied_and_what_lies_beyond_a_gateway_is_not() {
        let denied = denied_networks(&routes());
        let is_denied = |ip: &str| {
            let ip: Ipv4Addr = ip.parse().expect("IP");
            denied.iter().any(|n| n.contains(&ip))
        };
        for ip in [
            "192.0.2.1",    // the host's LAN router
            "198.51.100.2", // a directly connected public network
            "10.250.0.7",   // a private LAN
            "172.31.250.10",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "127.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(is_denied(ip), "{ip}");
        }
        for ip in ["203.0.113.10", "8.8.8.8", "198.19.7.2"] {
            assert!(!is_denied(ip), "{ip}");
        }
        assert!(denied.contains(&"10.0.0.0/8".parse().expect("CIDR")));
        assert!(
            !denied.iter().any(|n| n.to_string() == "10.250.0.0/24"),
            "aggregated into 10/8: {denied:?}"
        );
    }

    #[test]
    fn the_pools_addresses_routed_elsewhere_are_held() {
        let own = BTreeSet::from(["nvaaaa".to_owned()]);
        let held = held_networks(&routes(), "198.19.0.0/16".parse().expect("pool"), &own);
        assert_eq!(held, nets(&["198.19.7.2/32", "198.19.7.9/32"]));
    }

    #[test]
    fn the_table_guards_input_and_forward_from_this_servers_uplinks() {
        let uplinks = BTreeSet::from(["nvaaaa".to_owned(), "nvbbbb".to_owned()]);
        let script = render(&HostTable {
            name: "nimbus_host_0a",
            pool: "198.19.7.0/24".parse().expect("pool"),
            uplinks: &uplinks,
            denied: &nets(&["10.0.0.0/8", "192.0.2.0/24"]),
            allowed: &[],
            routed_back: &nets(&["203.0.113.0/24"]),
        });
        assert!(script.starts_with(
            "table inet nimbus_host_0a\ndelete table inet nimbus_host_0a\ntable inet nimbus_host_0a {"
        ));
        assert!(script.contains("elements = { \"nvaaaa\", \"nvbbbb\" }"));
        assert!(script.contains("elements = { 10.0.0.0/8, 192.0.2.0/24 }"));
        assert!(script.contains("ip saddr 198.19.7.0/24 oifname != \"nv*\" masquerade"));
        assert!(script.contains("ip saddr 198.19.7.0/24 ip daddr { 203.0.113.0/24 } return"));
        assert!(script.contains("iifname @uplinks jump guest_to_host"));
        assert!(script.contains("iifname @uplinks jump guest_through_host"));
        // No empty `elements` for the empty allow list.
        assert!(!script.contains("elements = {  }"));
        let guard = script
            .split("chain guest_through_host {")
            .nth(1)
            .expect("forward guard");
        let order: Vec<usize> = [
            "established",
            "oifname @uplinks accept",
            "oifname \"nv*\" drop",
            "@allowed accept",
            "@denied drop",
        ]
        .iter()
        .map(|rule| guard.find(rule).expect(rule))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{guard}");
    }
}
