//! `EXPOSE`: port specs to `port/proto` keys, as BuildKit's `convert_expose.go` parses them.

use std::net::IpAddr;

use super::{LowerError, Scope};
use crate::solver::gofmt;
use crate::solver::image::Empty;
use crate::solver::state::StageState;

/// `EXPOSE 80 443/udp 8000-8001`: each entry is expanded *with* word splitting (an ARG holding
/// `"80 443"` exposes two ports), ranges are spelled out. History: `EXPOSE [80/tcp 443/udp]`.
pub(super) fn expose(state: &mut StageState, ports: &[String], scope: &Scope<'_>) -> Result<(), LowerError> {
    let mut words = Vec::new();
    for port in ports {
        let split = scope
            .lexer
            .process_words(port, &state.env)
            .map_err(LowerError::Expand)?;
        words.extend(split);
    }
    let mut exposed = Vec::new();
    for word in &words {
        exposed.extend(parse_port_spec(word)?);
    }
    for port in &exposed {
        state.image.config.exposed_ports.insert(port.clone(), Empty {});
    }
    state.commit(format!("EXPOSE {}", gofmt::slice_v(&exposed)), false);
    Ok(())
}

/// `[ip:][hostPort:]containerPort[/proto]` to the container ports it names, `port/proto` each.
pub(super) fn parse_port_spec(raw: &str) -> Result<Vec<String>, LowerError> {
    let (ip, host_port, container_port) = split_parts(raw);
    let (port, proto) = container_port.split_once('/').unwrap_or((container_port, ""));
    let proto = match proto.to_lowercase().as_str() {
        "" => "tcp".to_owned(),
        p @ ("tcp" | "udp" | "sctp") => p.to_owned(),
        other => {
            return Err(LowerError::InvalidProto {
                proto: other.to_owned(),
            });
        }
    };
    let ip = match ip.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').unwrap_or(inner),
        None => ip,
    };
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(LowerError::InvalidIp { ip: ip.to_owned() });
    }
    if port.is_empty() {
        return Err(LowerError::NoPort { spec: raw.to_owned() });
    }
    let (start, end) = parse_range(port).ok_or_else(|| LowerError::InvalidContainerPort {
        port: port.to_owned(),
    })?;
    if !host_port.is_empty() {
        let (host_start, host_end) = parse_range(host_port).ok_or_else(|| LowerError::InvalidHostPort {
            port: host_port.to_owned(),
        })?;
        if end - start != host_end - host_start && end != start {
            return Err(LowerError::PortRanges {
                container: port.to_owned(),
                host: host_port.to_owned(),
            });
        }
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Splits `[ip:][host:]container` on colons the way Docker's `splitParts` does (an IPv6 address keeps
/// its colons).
fn split_parts(raw: &str) -> (&str, &str, &str) {
    let parts: Vec<&str> = raw.split(':').collect();
    match parts.as_slice() {
        [container] => ("", "", container),
        [host, container] => ("", host, container),
        [ip, host, container] => (ip, host, container),
        _ => {
            let n = parts.len();
            let ip_len = raw.len() - parts[n - 2].len() - parts[n - 1].len() - 2;
            (&raw[..ip_len], parts[n - 2], parts[n - 1])
        }
    }
}

/// `80` or `8000-9000` as Go's `ParseUint(s, 10, 16)` reads each end.
fn parse_range(ports: &str) -> Option<(u64, u64)> {
    let port = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u16>().ok().map(u64::from)
    };
    match ports.split_once('-') {
        None => port(ports).map(|p| (p, p)),
        Some((a, b)) if !b.contains('-') => {
            let (start, end) = (port(a)?, port(b)?);
            (end >= start).then_some((start, end))
        }
        Some(_) => None,
    }
}
