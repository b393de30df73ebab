//! Curator's ServiceDiscovery layout (curator-x-discovery), so Java services using Curator
//! and zkutil find each other: an instance of service NAME is the node `BASE/NAME/<id>`
//! holding the ServiceInstance JSON that Curator's `JsonInstanceSerializer` writes:
//! `name`, `id`, `address`, `port`, `sslPort`, `payload`, `registrationTimeUTC` (ms since
//! the epoch), `serviceType` (`DYNAMIC`: an ephemeral node, alive with its session) and
//! `uriSpec` (`{"parts":[{"value":..,"variable":..}]}` or null). `enabled` is read but not
//! written, as Curator's default (compatible) serializer does not write it. The field names
//! were checked against curator-x-discovery's ServiceInstance, OldServiceInstance,
//! UriSpec and JsonInstanceSerializer.
//!
//! Registering follows `ServiceDiscoveryImpl.internalRegisterService`: parents created as
//! containers, and a node already there under our id (a stale registration of an earlier
//! session) deleted and created again, so watchers see the new one.
//!
//! This module never prints.

use std::fmt;

use serde_json::{Map, Value, json};

use super::support::retrying;
use crate::zk::{self, Code, CreateMode, SessionWatch, WatchEvent, ZooKeeper};

/// One service instance, as Curator's ServiceInstance has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The service name.
    pub name: String,
    /// The instance id (the node's name; Curator uses a random UUID).
    pub id: String,
    /// Host or IP address.
    pub address: Option<String>,
    /// Port.
    pub port: Option<i64>,
    /// SSL port.
    pub ssl_port: Option<i64>,
    /// Any JSON (Null: none).
    pub payload: Value,
    /// Registration time, ms since the epoch (UTC).
    pub registration_time_utc: i64,
    /// `DYNAMIC`, `STATIC`, `PERMANENT` or `DYNAMIC_SEQUENTIAL`.
    pub service_type: String,
    /// The URI spec's raw parts (Null: none).
    pub uri_spec: Value,
    /// Curator's `enabled` (absent means enabled).
    pub enabled: bool,
}

impl Instance {
    /// The JSON Curator's JsonInstanceSerializer writes (in its compatible mode: no `enabled`).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_value()).unwrap_or_default()
    }

    /// The instance as a JSON value (Curator's fields, in its order; no `enabled`).
    pub fn to_value(&self) -> Value {
        json!({
            "name": self.name,
            "id": self.id,
            "address": self.address,
            "port": self.port,
            "sslPort": self.ssl_port,
            "payload": self.payload,
            "registrationTimeUTC": self.registration_time_utc,
            "serviceType": self.service_type,
            "uriSpec": self.uri_spec,
        })
    }

    /// Reads an instance written by Curator (or by us). Unknown fields are ignored, as
    /// Curator's serializer does.
    pub fn from_json(raw: &[u8]) -> Result<Instance, String> {
        let v: Value = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
        let o = v.as_object().ok_or("not a JSON object")?;
        let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| o.get(k).and_then(Value::as_i64);
        Ok(Instance {
            name: s("name").ok_or("no \"name\"")?,
            id: s("id").ok_or("no \"id\"")?,
            address: s("address"),
            port: n("port"),
            ssl_port: n("sslPort"),
            payload: o.get("payload").cloned().unwrap_or(Value::Null),
            registration_time_utc: n("registrationTimeUTC").unwrap_or(0),
            service_type: s("serviceType").unwrap_or_else(|| "DYNAMIC".into()),
            uri_spec: o.get("uriSpec").cloned().unwrap_or(Value::Null),
            enabled: o.get("enabled").and_then(Value::as_bool).unwrap_or(true),
        })
    }
}

/// Parses a URI spec as Curator's `UriSpec(String)` does: `{name}` parts are variables
/// (trimmed), the rest literals. Err for unbalanced braces.
pub fn uri_spec(raw: &str) -> Result<Value, String> {
    let mut parts = Vec::new();
    let mut inside = false;
    let mut cur = String::new();
    let flush = |cur: &mut String, inside: bool, parts: &mut Vec<Value>| {
        if !cur.is_empty() {
            let value = if inside { cur.trim().to_string() } else { cur.clone() };
            parts.push(json!({"value": value, "variable": inside}));
            cur.clear();
        }
    };
    for c in raw.chars() {
        match c {
            '{' if inside => return Err("{ is not allowed inside of a variable specification".into()),
            '{' => {
                flush(&mut cur, inside, &mut parts);
                inside = true;
            }
            '}' if !inside => return Err("} must be preceded by {".into()),
            '}' => {
                flush(&mut cur, inside, &mut parts);
                inside = false;
            }
            c => cur.push(c),
        }
    }
    if inside {
        return Err("final variable not closed: expected }".into());
    }
    flush(&mut cur, inside, &mut parts);
    let mut m = Map::new();
    m.insert("parts".into(), Value::Array(parts));
    Ok(Value::Object(m))
}

/// Why a discovery call failed.
#[derive(Debug)]
pub enum Error {
    /// ZooKeeper refused or failed a call.
    Zk(zk::Error),
    /// Bad input.
    Invalid(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Zk(e) => e.fmt(f),
            Error::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Error {}

impl From<zk::Error> for Error {
    fn from(e: zk::Error) -> Error {
        Error::Zk(e)
    }
}

/// `BASE/NAME`: where NAME's instances live.
pub fn service_path(base: &str, name: &str) -> String {
    zk::join(base, name)
}

fn node_name(what: &str, s: &str) -> Result<(), Error> {
    if s.is_empty() || s.contains('/') || s == "." || s == ".." {
        return Err(Error::Invalid(format!("{s:?} cannot be a {what} (a node name)")));
    }
    Ok(())
}

/// A registration; dropping it deletes the node (best effort; the session's end does too).
pub struct Registration<'z> {
    zk: &'z ZooKeeper,
    health: SessionWatch,
    node: String,
    done: bool,
}

impl Registration<'_> {
    /// The instance's node.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Forgets the node (the session is gone, and the node with it).
    pub fn abandon(mut self) {
        self.done = true;
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if !self.done && self.health.may_act() {
            let _ = retrying(self.zk, &self.health, || match self.zk.delete(&self.node, None) {
                Err(e) if e.code() == Some(Code::NoNode) => Ok(()),
                r => r,
            });
        }
    }
}

/// Registers `inst` under `base` as an ephemeral node (DYNAMIC).
pub fn register<'z>(zk: &'z ZooKeeper, base: &str, inst: &Instance) -> Result<Registration<'z>, Error> {
    zk::validate_path(base, false)?;
    node_name("service name", &inst.name)?;
    node_name("instance id", &inst.id)?;
    let dir = service_path(base, &inst.name);
    let node = zk::join(&dir, &inst.id);
    let data = inst.to_json();
    let health = SessionWatch::watcher(zk);
    for _ in 0..3 {
        match retrying(zk, &health, || zk.create(&node, &data, CreateMode::Ephemeral)) {
            Ok(_) => return Ok(Registration { zk, health, node, done: false }),
            Err(e) if e.code() == Some(Code::NoNode) => {
                retrying(zk, &health, || zk.ensure_path(&dir, CreateMode::Container))?
            }
            Err(e) if e.code() == Some(Code::NodeExists) => {
                // ours (a create whose reply was lost), or a stale one: Curator deletes it and
                // creates again, so that watchers fire
                match retrying(zk, &health, || {
                    zk.sync(&node)?;
                    zk.exists(&node)
                })? {
                    Some(st) if st.ephemeral_owner == zk.session_id() => {
                        return Ok(Registration { zk, health, node, done: false });
                    }
                    _ => retrying(zk, &health, || match zk.delete(&node, None) {
                        Err(e) if e.code() == Some(Code::NoNode) => Ok(()),
                        r => r,
                    })?,
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Zk(zk::Error::Zk { code: Code::NodeExists, path: Some(node) }))
}

/// The service names under `base` (Curator's queryForNames).
pub fn names(zk: &ZooKeeper, base: &str) -> Result<Vec<String>, Error> {
    let health = SessionWatch::watcher(zk);
    match retrying(zk, &health, || zk.children(base)) {
        Ok(mut v) => {
            v.sort();
            Ok(v)
        }
        Err(e) if e.code() == Some(Code::NoNode) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// One listed node: its name and what it holds (Err: not a ServiceInstance).
pub type Listed = (String, Result<Instance, String>);

/// NAME's instances (Curator's queryForInstances), by node name; and, with `watch`, a
/// receiver that fires when one comes or goes.
pub fn instances(
    zk: &ZooKeeper,
    base: &str,
    name: &str,
    watch: bool,
) -> Result<(Vec<Listed>, Option<crossbeam_channel::Receiver<WatchEvent>>), Error> {
    node_name("service name", name)?;
    let health = SessionWatch::watcher(zk);
    let dir = service_path(base, name);
    let (mut kids, rx) = if watch {
        match retrying(zk, &health, || zk.children_w(&dir)) {
            Ok((k, _, rx)) => (k, Some(rx)),
            Err(e) if e.code() == Some(Code::NoNode) => {
                // Curator creates the path to watch it; a creation watch does the same job
                let (st, rx) = retrying(zk, &health, || zk.exists_w(&dir))?;
                if st.is_some() {
                    return instances(zk, base, name, watch);
                }
                return Ok((Vec::new(), Some(rx)));
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        match retrying(zk, &health, || zk.children(&dir)) {
            Ok(k) => (k, None),
            Err(e) if e.code() == Some(Code::NoNode) => return Ok((Vec::new(), None)),
            Err(e) => return Err(e.into()),
        }
    };
    kids.sort();
    let mut out = Vec::new();
    for k in kids {
        match retrying(zk, &health, || zk.get(&zk::join(&dir, &k))) {
            Ok((raw, _)) => out.push((k, Instance::from_json(&raw))),
            Err(e) if e.code() == Some(Code::NoNode) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((out, rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_specs_parse_as_curator() {
        let v = uri_spec("{scheme}://foo.com:{ port }").unwrap();
        assert_eq!(
            v,
            json!({"parts": [
                {"value": "scheme", "variable": true},
                {"value": "://foo.com:", "variable": false},
                {"value": "port", "variable": true},
            ]})
        );
        assert!(uri_spec("{a").is_err());
        assert!(uri_spec("a}").is_err());
        assert!(uri_spec("{{a}}").is_err());
    }

    #[test]
    fn instances_round_trip_and_curator_json_reads() {
        let i = Instance {
            name: "web".into(),
            id: "1b4e28ba-2fa1-11d2-883f-0016d3cca427".into(),
            address: Some("10.0.0.7".into()),
            port: Some(8080),
            ssl_port: None,
            payload: json!({"zone": "a"}),
            registration_time_utc: 1_796_284_805_000,
            service_type: "DYNAMIC".into(),
            uri_spec: Value::Null,
            enabled: true,
        };
        assert_eq!(Instance::from_json(&i.to_json()).unwrap(), i);
        // as Curator writes it (a Map payload with Jackson's type id, uriSpec, enabled)
        let curator = br#"{"name":"web","id":"x","address":"10.0.0.8","port":9090,"sslPort":null,
            "payload":{"@class":"java.util.LinkedHashMap","zone":"b"},"registrationTimeUTC":1,
            "serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"scheme","variable":true}]},"enabled":false}"#;
        let c = Instance::from_json(curator).unwrap();
        assert_eq!((c.port, c.enabled, c.payload["zone"].as_str()), (Some(9090), false, Some("b")));
    }
}
