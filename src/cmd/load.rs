//! `zkutil load` and `zkutil cp`: restore a dump (or copy a live subtree) under a path.
//!
//! Order of work: nodes in batches, parents before children (the dump's order), each batch
//! one `multi`; then, with --preserve-sequence, each parent's cversion raised to the dumped
//! one; then, last of all and children before parents, the dumped ACLs. A restrictive ACL
//! therefore never stops the restore of the subtree under it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::Run;
use super::dump::{DumpReader, Filter, Record, walk_records};
use crate::cli::{CpArgs, Global, LoadArgs, RestoreArgs};
use crate::zk::{self, Acl, Code, CreateMode, Op, ZooKeeper};

/// What to do with a node that exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Stop with an error (the default).
    Fail,
    /// Replace its data (and ACL).
    Overwrite,
    /// Leave it as it is.
    Skip,
}

/// Options of a load or a copy.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where the dumped root goes.
    pub target: String,
    /// Print the plan; write nothing.
    pub dry_run: bool,
    /// Nodes that exist already.
    pub existing: Existing,
    /// Raise each parent's cversion to the dumped one.
    pub preserve_sequence: bool,
}

/// What a load did.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadStats {
    /// Nodes created.
    pub created: u64,
    /// Existing nodes whose data was replaced.
    pub overwritten: u64,
    /// Existing nodes left alone.
    pub skipped: u64,
    /// ACLs set after the tree was in place.
    pub acls: u64,
    /// Parents whose cversion was raised.
    pub cversions: u64,
    /// (dry run) existing nodes that would stop the load.
    pub conflicts: u64,
}

const BATCH_NODES: usize = 500;
const BATCH_BYTES: usize = 512 * 1024;

/// Loads records (parents before children) into `zk`.
pub struct Loader<'a> {
    zk: &'a ZooKeeper,
    opts: LoadOptions,
    batch: Vec<Record>,
    batch_bytes: usize,
    acls: Vec<(String, Vec<Acl>)>,
    seqs: Vec<(String, i32)>,
    default_open: bool,
    started: bool,
    /// Counts so far.
    pub stats: LoadStats,
}

impl<'a> Loader<'a> {
    /// A loader into `zk` with these options.
    pub fn new(zk: &'a ZooKeeper, opts: LoadOptions, authenticated: bool) -> Loader<'a> {
        Loader {
            zk,
            opts,
            batch: Vec::new(),
            batch_bytes: 0,
            acls: Vec::new(),
            seqs: Vec::new(),
            default_open: !authenticated,
            started: false,
            stats: LoadStats::default(),
        }
    }

    /// Adds one record; batches are written as they fill.
    pub fn push(&mut self, r: Record) -> Result<()> {
        self.batch_bytes += r.data.len() + r.rel.len() + self.opts.target.len() + 64;
        self.batch.push(r);
        if self.batch.len() >= BATCH_NODES || self.batch_bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        if batch.is_empty() {
            return Ok(());
        }
        let target = self.opts.target.clone();
        if !self.started {
            self.started = true;
            if let Some(parent) = zk::parent(&target)
                && !self.opts.dry_run
            {
                self.zk.ensure_path(parent, CreateMode::Persistent)?;
            }
        }
        let paths: Vec<String> = batch.iter().map(|r| r.path_under(&target)).collect();
        // Which exist already: one pipelined round.
        let mut exists = vec![false; paths.len()];
        let mut reqs = self.zk.requests();
        for (i, p) in paths.iter().enumerate() {
            reqs.exists(i as u64, p)?;
        }
        while let Some((i, r)) = reqs.recv() {
            match r {
                Ok(_) => exists[i as usize] = true,
                Err(Code::NoNode) => {}
                Err(code) => return Err(zk::Error::Zk { code, path: Some(paths[i as usize].clone()) }.into()),
            }
        }
        drop(reqs);
        let mut ops = Vec::new();
        let mut bytes = 0;
        for ((r, path), exists) in batch.into_iter().zip(paths).zip(exists) {
            let op = match (exists, self.opts.existing) {
                (false, _) => {
                    self.stats.created += 1;
                    Op::Create { path: path.clone(), data: r.data, mode: CreateMode::Persistent }
                }
                (true, Existing::Skip) => {
                    self.stats.skipped += 1;
                    if self.opts.dry_run {
                        println!("skip {path} (exists)");
                    }
                    continue;
                }
                (true, Existing::Overwrite) => {
                    self.stats.overwritten += 1;
                    Op::Set { path: path.clone(), data: r.data, version: None }
                }
                (true, Existing::Fail) if self.opts.dry_run => {
                    self.stats.conflicts += 1;
                    println!("conflict {path} (exists; load --overwrite or --skip-existing)");
                    continue;
                }
                (true, Existing::Fail) => {
                    bail!("{path}: the node exists already (load --overwrite replaces, --skip-existing keeps it)")
                }
            };
            if self.opts.dry_run {
                let verb = if matches!(op, Op::Create { .. }) { "create" } else { "overwrite" };
                println!("{verb} {path}");
            }
            if !(r.acl.is_empty() || self.default_open && r.acl == Acl::open()) {
                self.acls.push((path.clone(), r.acl));
            }
            if self.opts.preserve_sequence && r.stat.cversion > 0 {
                self.seqs.push((path, r.stat.cversion));
            }
            let size = op.path().len()
                + 64
                + match &op {
                    Op::Create { data, .. } | Op::Set { data, .. } => data.len(),
                    _ => 0,
                };
            if bytes + size > BATCH_BYTES && !ops.is_empty() {
                self.multi(std::mem::take(&mut ops))?;
                bytes = 0;
            }
            bytes += size;
            ops.push(op);
        }
        self.multi(ops)
    }

    /// One transaction; a missing parent (a dump filtered with --include) is created first.
    fn multi(&self, ops: Vec<Op>) -> Result<()> {
        if ops.is_empty() || self.opts.dry_run {
            return Ok(());
        }
        // A single node too big for a transaction's packet goes on its own.
        if ops.len() == 1
            && let Op::Create { path, data, mode } = &ops[0]
        {
            return self.create_one(path, data, *mode);
        }
        for _ in 0..1000 {
            match self.zk.multi(&ops) {
                Ok(_) => return Ok(()),
                Err(zk::Error::Multi { code: Code::NoNode, path, .. })
                    if matches!(ops.iter().find(|o| o.path() == path), Some(Op::Create { .. })) =>
                {
                    let parent = zk::parent(&path).unwrap_or("/").to_string();
                    self.zk.ensure_path(&parent, CreateMode::Persistent)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        bail!("creating the missing parents of {} did not converge", ops[0].path())
    }

    fn create_one(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<()> {
        match self.zk.create(path, data, mode) {
            Err(e) if e.code() == Some(Code::NoNode) => {
                self.zk.ensure_path(zk::parent(path).unwrap_or("/"), CreateMode::Persistent)?;
                self.zk.create(path, data, mode)?;
            }
            r => {
                r?;
            }
        }
        Ok(())
    }

    /// Writes what is left, raises the cversions, then applies the ACLs (children first).
    pub fn finish(mut self) -> Result<LoadStats> {
        self.flush()?;
        if self.opts.dry_run {
            for (p, c) in &self.seqs {
                println!("sequence {p} >= {c}");
            }
            for (p, acl) in self.acls.iter().rev() {
                println!("setacl {p} {}", acl.iter().map(super::dump::acl_string).collect::<Vec<_>>().join(","));
            }
            return Ok(self.stats);
        }
        if !self.seqs.is_empty() {
            self.stats.cversions = raise_cversions(self.zk, &self.seqs)?;
        }
        let mut reqs = self.zk.requests();
        let mut failed = None;
        for (i, (p, acl)) in self.acls.iter().enumerate().rev() {
            while reqs.in_flight() >= 1000 {
                if let Some((tag, Err(code))) = reqs.recv() {
                    failed.get_or_insert((tag, code));
                }
            }
            reqs.set_acl(i as u64, p, acl, None)?;
        }
        while let Some((tag, r)) = reqs.recv() {
            if let Err(code) = r {
                failed.get_or_insert((tag, code));
            }
        }
        if let Some((tag, code)) = failed {
            let path = self.acls[tag as usize].0.clone();
            return Err(zk::Error::Zk { code, path: Some(path) }).context("setting the dumped ACL");
        }
        self.stats.acls = self.acls.len() as u64;
        Ok(self.stats)
    }
}

/// Makes sequential children created after the restore continue the old numbering: the
/// server numbers a sequential child by how many children the parent has had created (its
/// cversion counts deletes too, so it is an upper bound of that). Each parent's counter is
/// probed with one sequential create (deleted at once), then raised to the dumped cversion by
/// creating and deleting a scratch child. Numbers may skip, never repeat. Returns how many
/// parents needed raising.
fn raise_cversions(zk: &ZooKeeper, seqs: &[(String, i32)]) -> Result<u64> {
    let mut next = vec![0i64; seqs.len()];
    let mut failed = None;
    let mut reqs = zk.requests();
    let note = |failed: &mut Option<(u64, Code)>,
                tag: u64,
                r: std::result::Result<zk::Answer, Code>,
                next: &mut [i64]| match r {
        Ok(zk::Answer::Created(p, _)) => next[(tag / 2) as usize] = zk::sequence_of(&p).map_or(0, i64::from) + 1,
        Ok(_) => {}
        Err(code) => {
            failed.get_or_insert((tag / 2, code));
        }
    };
    for (i, (p, _)) in seqs.iter().enumerate() {
        while reqs.in_flight() >= 1000 {
            if let Some((tag, r)) = reqs.recv() {
                note(&mut failed, tag, r, &mut next);
            }
        }
        let probe = zk::join(p, "zkutil-seq-probe-");
        reqs.create(2 * i as u64, &probe, b"", CreateMode::EphemeralSequential, Some(&Acl::open()))?;
    }
    while let Some((tag, r)) = reqs.recv() {
        note(&mut failed, tag, r, &mut next);
    }
    // The probes are ephemeral: delete them now (by their numbers), then raise.
    let mut raised = 0;
    for (i, (p, want)) in seqs.iter().enumerate() {
        if next[i] > 0 {
            let probe = format!("{}/zkutil-seq-probe-{:010}", p.trim_end_matches('/'), next[i] - 1);
            reqs.delete(2 * i as u64 + 1, &probe, None)?;
        }
        if next[i] >= i64::from(*want) {
            continue;
        }
        raised += 1;
        let scratch = zk::join(p, "zkutil-cversion-bump");
        // On one session the server applies these in order: create, delete, create, ...
        for _ in next[i]..i64::from(*want) {
            while reqs.in_flight() >= 1000 {
                if let Some((tag, Err(code))) = reqs.recv() {
                    failed.get_or_insert((tag / 2, code));
                }
            }
            reqs.create(2 * i as u64 + 1, &scratch, b"", CreateMode::Persistent, Some(&Acl::open()))?;
            reqs.delete(2 * i as u64 + 1, &scratch, None)?;
        }
    }
    while let Some((tag, r)) = reqs.recv() {
        if let Err(code) = r {
            failed.get_or_insert((tag / 2, code));
        }
    }
    if let Some((i, code)) = failed {
        let path = seqs.get(i as usize).map(|s| s.0.clone());
        return Err(zk::Error::Zk { code, path }).context("raising the sequence counters (--preserve-sequence)");
    }
    Ok(raised)
}

fn report(what: &str, s: &LoadStats, dry_run: bool) {
    let would = if dry_run { " (dry run: nothing written)" } else { "" };
    crate::status!(
        "zkutil: {what}: {} created, {} overwritten, {} skipped, {} ACLs set, {} sequence counters raised{would}",
        s.created,
        s.overwritten,
        s.skipped,
        s.acls,
        s.cversions
    );
}

impl RestoreArgs {
    /// The loader's options for writing under `target`.
    fn options(&self, target: String) -> LoadOptions {
        let existing = if self.overwrite {
            Existing::Overwrite
        } else if self.skip_existing {
            Existing::Skip
        } else {
            Existing::Fail
        };
        LoadOptions { target, dry_run: self.dry_run, existing, preserve_sequence: self.preserve_sequence }
    }
}

impl Run for LoadArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let reader = DumpReader::open(Path::new(&self.file))?;
        let target = self.to.clone().unwrap_or_else(|| reader.root.clone());
        zk::validate_path(&target, false)?;
        let zk = g.connect()?;
        let mut loader = Loader::new(&zk, self.restore.options(target), g.auth.is_some());
        let mut ended = false;
        let mut reader = reader;
        for r in reader.by_ref() {
            loader.push(r?)?;
        }
        ended |= reader.ended;
        if !ended {
            bail!("{}: the dump has no end line (truncated?); what it held was loaded", self.file);
        }
        let stats = loader.finish()?;
        report(&format!("load {}", self.file), &stats, self.restore.dry_run);
        Ok(if stats.conflicts > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
    }
}

/// `PATH` or `HOSTS:PATH` (HOSTS a connect string, e.g. `10.0.0.1:2181,10.0.0.2:2181:/app`).
pub fn split_spec(spec: &str) -> (Option<&str>, &str) {
    if spec.starts_with('/') {
        return (None, spec);
    }
    match spec.rfind(":/") {
        Some(i) => (Some(&spec[..i]), &spec[i + 1..]),
        None => (None, spec),
    }
}

/// Connects to the cluster a spec names (`--hosts` when it names none).
pub fn connect_spec(g: &Global, hosts: Option<&str>) -> Result<ZooKeeper> {
    match hosts {
        None => g.connect_owned(),
        Some(h) => {
            Global { hosts: h.to_string(), ..g.clone() }.connect_owned().with_context(|| format!("connecting to {h}"))
        }
    }
}

impl Run for CpArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let (src_hosts, src) = split_spec(&self.src);
        let (dst_hosts, dst) = split_spec(&self.dst);
        zk::validate_path(src, false)?;
        zk::validate_path(dst, false)?;
        let same = src_hosts.unwrap_or(&g.hosts) == dst_hosts.unwrap_or(&g.hosts);
        if same && (dst == src || dst.starts_with(&format!("{}/", src.trim_end_matches('/')))) {
            bail!("cp: {dst} is inside {src} on the same cluster: the copy would copy itself");
        }
        let from = connect_spec(g, src_hosts)?;
        let to = if same { None } else { Some(connect_spec(g, dst_hosts)?) };
        let to_zk = to.as_ref().unwrap_or(&from);
        let filter = Filter::new(&self.include, &self.exclude, self.ephemeral);
        let mut loader = Loader::new(to_zk, self.restore.options(dst.to_string()), g.auth.is_some());
        // The walk reads ahead on the source session while the loader writes on the other.
        walk_records(&from, src, &filter, |r| loader.push(r))?;
        let stats = loader.finish()?;
        report(&format!("cp {} {}", self.src, self.dst), &stats, self.restore.dry_run);
        Ok(if stats.conflicts > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
    }
}
