//! Command-line definitions (clap derive): `Cli`, the global flags, one struct per subcommand.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::util::{parse_duration, parse_session_timeout};
use crate::zk::Acl;

/// ZooKeeper coordination recipes and znode commands, over the official C client.
#[derive(Debug, Parser)]
#[command(name = "zkutil", version, long_version = crate::LONG_VERSION, about, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Flags every subcommand takes (shown under their own heading in every `--help`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// ZooKeeper connect string, chroot allowed: h1:2181,h2:2181/app (no port: 2181; IPv6: [::1]:2181)
    #[arg(long, global = true, env = "ZK_HOSTS", hide_env_values = true, default_value = "127.0.0.1:2181")]
    pub hosts: String,
    /// Session timeout asked of the server, 2ms to 12d (the server grants 2 to 20 ticks of it)
    #[arg(long, global = true, value_parser = parse_session_timeout, default_value = "10s", value_name = "DURATION")]
    pub session_timeout: Duration,
    /// How long to wait for a session before giving up
    #[arg(long, global = true, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub connect_timeout: Duration,
    /// Digest credentials USER:PASSWORD; nodes this invocation creates get the creator-only ACL
    #[arg(long, global = true, env = "ZK_AUTH", value_name = "USER:PASSWORD", hide_env_values = true, value_parser = parse_auth)]
    pub auth: Option<String>,
    /// Output format of results on stdout: `text`, or `json` (one document; NDJSON for streams)
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub output: OutputFormat,
    /// No status messages on stderr (errors are still printed)
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
}

/// `-o/--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    // lines of text
    #[default]
    Text,
    // one JSON document, or one event per line (NDJSON) for commands that stream
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// List the children of a znode (one per line, sorted)
    Ls(LsArgs),
    /// Print a znode's data
    Get(GetArgs),
    /// Replace a znode's data
    Set(SetArgs),
    /// Create a znode; prints the created path
    Create(CreateArgs),
    /// Delete a znode (it must have no children)
    Delete(DeleteArgs),
    /// Delete a znode and everything under it
    #[command(name = "deleteall", alias = "rmr")]
    DeleteAll(PathArg),
    /// Print a znode's Stat
    Stat(PathArg),
    /// Print each change of a znode (or of its children) as it happens
    Watch(WatchArgs),
    /// Show a subtree, indented, with data sizes
    Tree(TreeArgs),
    /// Print a znode's ACL
    #[command(name = "getacl")]
    GetAcl(PathArg),
    /// Replace a znode's ACL (scheme:id:perms, comma-separated)
    #[command(name = "setacl")]
    SetAcl(SetAclArgs),
    /// Run tasks that take a distributed lock in turn (the classic mutex task loop)
    Mutex(MutexArgs),
    /// Run a command while holding a distributed lock (a flock over ZooKeeper)
    Lock(LockArgs),
    /// A producer/consumer queue on sequential znodes (kazoo's Queue format)
    #[command(subcommand)]
    Queue(QueueCmd),
    /// Crawl a site breadth-first with many threads; URLs are deduped in ZooKeeper, so many
    /// crawlers with the same --name share one crawl
    Crawl(CrawlArgs),
    /// A replicated key-value server with a ZooKeeper-elected leader (netcat or redis-cli)
    #[command(subcommand)]
    Kv(KvCmd),
    /// Leader election: run a command while elected leader; print or watch the leader
    #[command(subcommand)]
    Election(ElectionCmd),
    /// Barriers: single (hold/release/wait) and double (wait --count N)
    #[command(subcommand)]
    Barrier(BarrierCmd),
    /// A shared integer: get, add N, set N (compare-and-set, safe under concurrent updaters)
    Counter(CounterArgs),
    /// Group membership and service discovery: join, list
    #[command(subcommand)]
    Group(GroupCmd),
    /// Apply operations read from stdin as one transaction: all or nothing
    Txn(TxnArgs),
    /// Run a command holding one of N leases: at most N such commands at once (Curator's semaphore)
    Semaphore(SemaphoreArgs),
    /// Write a subtree as NDJSON, one node per line (data, ACL, Stat); `.gz` files compressed
    Dump(DumpArgs),
    /// Restore a dump: parents first, in transactions; ACLs applied last
    Load(LoadArgs),
    /// Copy a subtree, within a cluster or to another (SRC and DST: PATH or HOSTS:PATH)
    Cp(CpArgs),
    /// Compare two subtrees (PATH, HOSTS:PATH or a dump file); exit 1 when they differ
    Diff(DiffArgs),
    /// Run a command under a lease that outlives it until a time (kazoo's NonBlockingLease):
    /// never waits for another holder; the same --id renews it
    Lease(LeaseArgs),
    /// Two-phase commit among N participants: run CMD's prepare step and vote by its exit
    /// code, then run CMD's commit or abort step as the transaction decides
    Commit(CommitArgs),
    /// Divide a set of items among the members of a group (kazoo's SetPartitioner): run CMD
    /// with this member's share, again after every join or leave
    Partition(PartitionArgs),
    /// Service discovery in Curator's layout (BASE/NAME/ID holding ServiceInstance JSON):
    /// register, list
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Find nodes by name, data, owner, children or age
    Find(FindArgs),
    /// Search the data of a subtree; prints PATH:LINE for each matching line
    Grep(GrepArgs),
    /// Bytes of data and nodes per subtree, largest first
    Du(DuArgs),
    /// Number of nodes under PATH (PATH itself not counted)
    Count(CountArgs),
    /// The ensemble's health: mode, zxid, lag, latency, connections of every member
    #[command(subcommand)]
    Ensemble(EnsembleCmd),
    /// Which session (and client address) holds an ephemeral node
    Owner(OwnerArgs),
    /// The ensemble's dynamic configuration
    Config(ConfigArgs),
    /// Start, inspect or stop a local ZooKeeper (standalone or a 3-node ensemble)
    #[command(subcommand)]
    Server(ServerCmd),
    /// Print the `digest:USER:HASH` ACL id of USER:PASSWORD (for setacl)
    Digest(DigestArgs),
    /// Print a shell completion script (bash, zsh or fish)
    Completions(CompletionsArgs),
    /// Print zkutil's man page (roff) on stdout, or write one page per command into --dir
    Man(ManArgs),
    /// Walk through zkutil on a throwaway local ZooKeeper
    Demo(DemoArgs),
    /// Measure throughput and latency against ZooKeeper
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Browse, watch and edit the tree in a terminal UI (lazy: reads only what is opened)
    Inspect(InspectArgs),
    /// An interactive prompt: every zkutil command over one session, with cd, history and
    /// completion; -c 'CMD; CMD' or commands on stdin for scripts
    Shell(ShellArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Change nothing: no create, edit or delete
    #[arg(long)]
    pub read_only: bool,
    /// Root of the tree shown
    #[arg(default_value = "/")]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Run these commands (separated by `;` or newlines) and exit; stops at the first failure
    #[arg(short = 'c', value_name = "COMMANDS")]
    pub command: Option<String>,
}

#[derive(Debug, Args)]
pub struct PathArg {
    /// Znode path
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct DigestArgs {
    /// The credentials, as given to --auth
    #[arg(value_name = "USER:PASSWORD", value_parser = parse_auth)]
    pub credentials: String,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write zkutil.1 and one zkutil-COMMAND.1 per command into DIR instead
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// Shells `zkutil completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// A znode path as every command but `create -s` takes it: absolute, no trailing `/`.
pub fn parse_znode_path(s: &str) -> Result<String, String> {
    crate::zk::validate_path(s, false).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// `--auth USER:PASSWORD`.
pub fn parse_auth(s: &str) -> Result<String, String> {
    match s.split_once(':') {
        Some((user, _)) if !user.is_empty() => Ok(s.to_string()),
        _ => Err("expected USER:PASSWORD".into()),
    }
}

/// setacl's ACL: `scheme:id:perms` entries, comma-separated.
#[derive(Debug, Clone)]
pub struct AclList(pub Vec<Acl>);

fn parse_acl_list(s: &str) -> Result<AclList, String> {
    s.split(',').map(Acl::parse).collect::<Result<Vec<_>, _>>().map(AclList)
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// List the whole subtree, one full path per line
    #[arg(short = 'R')]
    pub recursive: bool,
    /// Also print the node's Stat
    #[arg(short = 's')]
    pub stat: bool,
    /// Znode path
    #[arg(default_value = "/", value_parser = parse_znode_path)]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Also print the node's Stat
    #[arg(short = 's')]
    pub stat: bool,
    /// Write the data's bytes unchanged even to a terminal (through a pipe they always are)
    #[arg(long)]
    pub raw: bool,
    /// Znode path
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Only if the node's data version is VERSION
    #[arg(short = 'v', value_name = "VERSION", allow_negative_numbers = true)]
    pub expected_version: Option<i32>,
    /// Also print the new Stat
    #[arg(short = 's')]
    pub stat: bool,
    /// Znode path
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
    /// New data; `-` reads stdin
    pub data: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Ephemeral: deleted when this session ends (that is, when zkutil exits)
    #[arg(short = 'e')]
    pub ephemeral: bool,
    /// Sequential: append a 10-digit sequence number to the name
    #[arg(short = 's')]
    pub sequential: bool,
    /// Container: deleted by the server once its last child is gone
    #[arg(short = 'c', conflicts_with_all = ["ephemeral", "sequential", "ttl"])]
    pub container: bool,
    /// Time to live (e.g. 10m): deleted after this long without changes once childless
    #[arg(short = 't', long = "ttl", value_parser = parse_duration, conflicts_with = "ephemeral")]
    pub ttl: Option<Duration>,
    /// Create missing parents (as persistent nodes)
    #[arg(short = 'p')]
    pub parents: bool,
    /// Znode path
    pub path: String,
    /// Data; `-` reads stdin
    pub data: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Only if the node's data version is VERSION
    #[arg(short = 'v', value_name = "VERSION", allow_negative_numbers = true)]
    pub expected_version: Option<i32>,
    /// Znode path
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Watch the list of children instead of the data
    #[arg(long, short = 'c')]
    pub children: bool,
    /// Watch the whole subtree: every create, delete and data change under PATH, one line
    /// each (a tree cache of one-shot watches, re-read after a reconnect or a new session)
    #[arg(short = 'R', conflicts_with = "children")]
    pub recursive: bool,
    /// Stop after N events
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,
    /// Znode path
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct TreeArgs {
    /// Only this many levels deep
    #[arg(long, short = 'd')]
    pub depth: Option<usize>,
    /// Root of the subtree
    #[arg(default_value = "/", value_parser = parse_znode_path)]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct SetAclArgs {
    /// Only if the node's ACL version is VERSION
    #[arg(short = 'v', value_name = "VERSION")]
    pub expected_version: Option<i32>,
    /// Allow an ACL that grants ADMIN to nobody, or a digest id whose HASH is not one
    /// (either can lock the node for good)
    #[arg(long)]
    pub force: bool,
    /// Znode path
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
    /// ACL entries, e.g. world:anyone:r,digest:bob:HASH:cdrwa (`zkutil digest` prints the id)
    #[arg(value_parser = parse_acl_list)]
    pub acl: AclList,
}

#[derive(Debug, Subcommand)]
pub enum ServerCmd {
    /// Start a local ZooKeeper in the background; returns once it serves
    Start(ServerStartArgs),
    /// Show what `server start` left running
    Status(ServerStateArgs),
    /// Stop what `server start` left running
    Stop(ServerStateArgs),
}

#[derive(Debug, Args)]
pub struct ServerStartArgs {
    /// Client port (of the first node; an ensemble uses the next ports too); 0 picks free
    /// ports and prints `export ZK_HOSTS=...` for `eval "$(zkutil server start --port 0)"`
    #[arg(long, default_value_t = 2181)]
    pub port: u16,
    /// 1 for a standalone server, 3 for an ensemble
    #[arg(long, default_value_t = 1, value_parser = parse_nodes)]
    pub nodes: usize,
    /// Data directory, kept by `server stop` (default: a temporary one, removed by `server stop`)
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where to record what was started; one per server to run several at once
    /// (default: $XDG_RUNTIME_DIR/zkutil/server.state, else the temp dir)
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// Member addresses, one per node (default: all on 127.0.0.1): member i listens for
    /// clients, peers and elections on ADDR i (ports as without --bind)
    #[arg(long, value_name = "ADDR,...", value_delimiter = ',')]
    pub bind: Vec<std::net::IpAddr>,
    /// Network namespaces, one per node: member i runs under `ip netns exec NS i` (needs
    /// root and --bind with addresses those namespaces own; see tools/rig.sh)
    #[arg(long, value_name = "NS,...", value_delimiter = ',', requires = "bind")]
    pub netns: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServerStateArgs {
    /// The state file `server start` wrote
    #[arg(long)]
    pub state_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Pause between steps (e.g. 500ms)
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub pause: Duration,
}

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Raw client limits: sequential create+delete round trips, pipelined creates
    Raw(BenchRawArgs),
    /// Queue throughput: produce, consume, and both at once
    Queue(BenchQueueArgs),
    /// Clients contending for one lock: acquisitions/s and acquire latency
    Lock(BenchLockArgs),
    /// A 3-server `kv serve` cluster: GET and PUT throughput, next to redis-server (starts
    /// its own ZooKeeper: --hosts is not used)
    Kv(BenchKvArgs),
    /// `kv serve` leader handover after SIGTERM and SIGKILL: min/median/max, on loopback and
    /// (--hosts-rig) across three hosts (starts its own ZooKeeper: --hosts is not used)
    Election(BenchElectionArgs),
    /// Crawl a generated loopback site twice: ZooKeeper dedupe, then in-memory dedupe
    Crawl(BenchCrawlArgs),
    /// The traversal engine on a big tree: listing, dump reads and deletion, next to the raw
    /// pipelined get/delete rates of the same run
    Tree(BenchTreeArgs),
}

#[derive(Debug, Args)]
pub struct BenchTreeArgs {
    /// Nodes in the tree
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(2..=10_000_000))]
    pub nodes: u32,
    /// Children per inner node
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub fanout: u32,
    /// Requests in flight
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub window: u32,
}

#[derive(Debug, Args)]
pub struct BenchRawArgs {
    /// Sequential create+delete pairs to time
    #[arg(long, default_value_t = 2000)]
    pub ops: usize,
    /// Nodes to create pipelined
    #[arg(long, default_value_t = 20000)]
    pub pipelined: usize,
    /// Requests in flight for the pipelined run
    #[arg(long, default_value_t = 1000)]
    pub window: usize,
}

#[derive(Debug, Subcommand)]
pub enum BarrierCmd {
    /// Raise the single barrier at PATH (a persistent node: it stays up after this returns)
    Hold(PathArg),
    /// Lower the single barrier at PATH (delete its node): every `wait` returns
    Release(PathArg),
    /// Single barrier: block while PATH exists. With --count N: double barrier (enter when
    /// N participants are present, run CMD if given, leave together)
    Wait(BarrierWaitArgs),
}

#[derive(Debug, Args)]
pub struct BarrierWaitArgs {
    /// Double barrier: the number of participants to wait for
    #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub count: Option<u32>,
    /// This participant's id, unique within the barrier (default: pid and session id)
    #[arg(long, value_name = "NAME", requires = "count")]
    pub id: Option<String>,
    /// Give up after this long (e.g. 30s), leaving the barrier cleanly; exit --conflict-exit-code
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Exit code when giving up (--timeout)
    #[arg(long, value_name = "N", default_value_t = crate::cmd::exit::CONFLICT)]
    pub conflict_exit_code: u8,
    /// Barrier path
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
    /// Command to run once everyone has entered; leave follows when it exits (double barrier)
    #[arg(last = true, value_name = "CMD", requires = "count")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CounterArgs {
    /// Counter path (created holding 0 by add/set when missing; get of a missing one prints 0)
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
    /// What to do (default: get)
    #[command(subcommand)]
    pub op: Option<CounterOp>,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum CounterOp {
    /// Print the value (the default)
    Get,
    /// Add N (negative subtracts) and print the new value
    Add {
        /// The amount to add
        #[arg(allow_negative_numbers = true)]
        n: i64,
    },
    /// Set the value to N and print it (overwrites whatever the node holds)
    Set {
        /// The new value
        #[arg(allow_negative_numbers = true)]
        n: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Be a member as long as this process (or CMD) lives: an ephemeral node PATH/NAME
    Join(GroupJoinArgs),
    /// Print the members (NAME, a tab, DATA), one per line; --watch: then every change
    List(GroupListArgs),
}

#[derive(Debug, Args)]
pub struct GroupJoinArgs {
    /// The member's data, e.g. its address (default: empty)
    #[arg(long, default_value = "")]
    pub data: String,
    /// Group path
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
    /// Member name, unique in the group
    pub name: String,
    /// Command to run as the member; the membership ends when it exits (its code is ours)
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct GroupListArgs {
    /// Keep running: print the members as `+NAME<TAB>DATA`, then each join (+) and leave (`-NAME`)
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// Group path
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct TxnArgs {
    /// Check the input and print the operations without applying them
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CrawlArgs {
    /// Start URLs (depth 0), http or https; none with --reset --name: only reset
    #[arg(value_name = "URL", required_unless_present = "reset")]
    pub urls: Vec<String>,
    /// Fetch pages up to this many links away from a start URL (0: the start pages only)
    #[arg(long, default_value_t = 2)]
    pub depth: u32,
    /// Fetching threads
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=512))]
    pub threads: u16,
    /// The crawl's name: crawlers with the same name share one URL table, /crawler/NAME,
    /// take over what one of them left unfetched when its session ended, and end together
    /// (default: the first start URL's host, and its port when it has one)
    #[arg(long)]
    pub name: Option<String>,
    /// Buckets of the URL table (every crawler of one name must use the same count)
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub buckets: u32,
    /// Where seen URLs are kept: `zookeeper` (shared by crawlers of the same --name) or
    /// `memory` (this process only; no ZooKeeper needed)
    #[arg(long, value_enum, default_value_t = DedupeMode::Zookeeper)]
    pub dedupe: DedupeMode,
    /// Delete the crawl's znodes first (with no URL: only that)
    #[arg(long)]
    pub reset: bool,
    /// Follow links to any host (default: only the start URLs' hosts, any port)
    #[arg(long)]
    pub any_host: bool,
    /// Fetch what robots.txt disallows
    #[arg(long)]
    pub ignore_robots: bool,
    /// Pause between two requests to the same host (e.g. 500ms)
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub delay: Duration,
    /// The same in milliseconds (the old spelling of --delay)
    #[arg(long, value_name = "MS", hide = true, conflicts_with = "delay", value_parser = clap::value_parser!(u64).range(..=3_155_760_000_000))]
    pub delay_ms: Option<u64>,
    /// Stop after fetching this many pages
    #[arg(long, value_name = "N")]
    pub max_pages: Option<u64>,
    /// Time limit of one request: connect, headers and body (e.g. 10s)
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Largest HTML body read, in bytes (suffix k or M allowed); larger pages are errors
    #[arg(long, value_parser = parse_size, default_value = "5M", value_name = "BYTES")]
    pub max_body: u64,
    /// Output file: one line per fetched URL (`-`: stdout); written only once a page is fetched,
    /// so a crawl with nothing new leaves an earlier file as it was
    #[arg(long, default_value = "URLs.txt")]
    pub out: PathBuf,
    /// `tsv`: depth, status, URL separated by tabs; `plain`: the URL only
    #[arg(long, value_enum, default_value_t = CrawlFormat::Tsv)]
    pub format: CrawlFormat,
}

/// Where crawl keeps the seen URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DedupeMode {
    Zookeeper,
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CrawlFormat {
    Tsv,
    Plain,
}

#[derive(Debug, Args)]
pub struct BenchCrawlArgs {
    /// Pages of the generated site
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub pages: u32,
    /// Links on each page
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub links: u32,
    /// Fetching threads
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=512))]
    pub threads: u16,
}

/// A byte count: `5000`, `512k`, `5M` (k = 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1024),
        Some((i, 'm' | 'M')) => (&t[..i], 1024 * 1024),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{s:?} is not a size: write it like 5000, 512k or 5M"))
}

fn parse_nodes(s: &str) -> Result<usize, String> {
    match s {
        "1" => Ok(1),
        "3" => Ok(3),
        _ => Err("1 (standalone) or 3 (ensemble)".into()),
    }
}

#[derive(Debug, Subcommand)]
pub enum QueueCmd {
    /// Add items: each ITEM, or each line of stdin; prints how many were queued
    Produce(QueueProduceArgs),
    /// Take items in queue order and print them, one per line (or run CMD on each)
    Consume(QueueConsumeArgs),
    /// Print the number of items waiting (claimed ones included)
    Len(PathArg),
    /// Print the first items without taking them
    Peek(QueuePeekArgs),
}

#[derive(Debug, Args)]
pub struct QueueProduceArgs {
    /// Produce N numbered items, item-0 .. item-N-1
    #[arg(long, short = 'n', value_name = "N", conflicts_with = "items")]
    pub count: Option<usize>,
    /// Priority: lower is taken first
    #[arg(long, short = 'p', default_value_t = 100, value_parser = clap::value_parser!(u16).range(0..=999))]
    pub priority: u16,
    /// Consumers see the items only after this long (e.g. 10m; Curator's delay queue). kazoo
    /// consumers do not wait: they take them in turn
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", conflicts_with = "at")]
    pub delay: Option<Duration>,
    /// Consumers see the items only from this time on: epoch milliseconds, or RFC 3339 in
    /// UTC (2026-12-03T12:00:00Z)
    #[arg(long, value_parser = parse_due_time, value_name = "TIME")]
    pub at: Option<u64>,
    /// Write Curator's DistributedQueue / DistributedDelayQueue format instead of kazoo's
    /// (children queue-[|DUE|]SEQ, each item in Curator's ItemSerializer framing), for Java
    /// consumers; zkutil's consumers do not take these items
    #[arg(long, conflicts_with = "priority")]
    pub curator: bool,
    /// Queue node (created if missing)
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
    /// Items; none given: one item per line of stdin
    pub items: Vec<String>,
}

#[derive(Debug, Args)]
pub struct QueueConsumeArgs {
    /// Stop after N items
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,
    /// Wait for new items (and delayed ones to become due) instead of stopping when no item is
    /// due
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// With --follow: stop once no item has arrived for this long (e.g. 30s)
    #[arg(long, value_parser = parse_duration, requires = "follow")]
    pub timeout: Option<Duration>,
    /// Queue node
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
    /// Run CMD once per item, the item on its stdin; the item is removed only when CMD exits 0
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

/// `queue produce --at`: epoch milliseconds or an RFC 3339 UTC time, after 1970 and at most
/// 100 years ahead (what `--delay` allows).
fn parse_due_time(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let ms = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse::<u64>().map_err(|_| format!("{s:?} is too large for epoch milliseconds"))?
    } else {
        let at = humantime::parse_rfc3339_weak(t).map_err(|e| {
            format!("{s:?} is not a time ({e}): write epoch milliseconds or RFC 3339 in UTC, like 2026-12-03T12:00:00Z")
        })?;
        at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    };
    let limit = crate::recipes::queue::epoch_ms() + crate::util::MAX_DURATION.as_millis() as u64;
    if ms == 0 {
        return Err(format!("{s:?}: a time after 1970-01-01T00:00:00Z"));
    }
    if ms > limit {
        return Err(format!("{s:?} is too far ahead: at most 100 years from now"));
    }
    Ok(ms)
}

#[derive(Debug, Args)]
pub struct QueuePeekArgs {
    /// How many items
    #[arg(long, short = 'n', value_name = "N", default_value_t = 1)]
    pub count: usize,
    /// Also items not yet due (delayed), after the due ones, earliest first
    #[arg(long)]
    pub all: bool,
    /// Queue node
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct BenchQueueArgs {
    /// Items per phase
    #[arg(long, default_value_t = 20000)]
    pub items: usize,
    /// Concurrent consumers (each its own session)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub consumers: u16,
}

#[derive(Debug, Args)]
pub struct MutexArgs {
    /// Number of tasks to run, one after another
    #[arg(long, default_value_t = 5)]
    pub tasks: u32,
    /// The lock's znode (created as a container if missing)
    #[arg(long, default_value = "/mutex", value_parser = parse_znode_path)]
    pub path: String,
    /// Each task works a random time up to this long while holding the lock (0s: no work)
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub max_work: Duration,
    /// Each task works at least this long (e.g. to hold the lock for a known time)
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub min_work: Duration,
    /// Begin each line with the wall-clock time (RFC 3339, microseconds), to compare terminals
    #[arg(long)]
    pub timestamps: bool,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// Give up if the lock is not had within this long (e.g. 30s; 0s: do not wait), exiting
    /// with --conflict-exit-code
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Exit code when the lock was not had (--timeout), so it tells apart from CMD's own failure
    #[arg(long, value_name = "N", default_value_t = crate::cmd::exit::CONFLICT)]
    pub conflict_exit_code: u8,
    /// Take the lock shared (a read lock): readers run together, a writer excludes all
    #[arg(long, visible_alias = "read")]
    pub shared: bool,
    /// Take it exclusive as a writer of Curator's InterProcessReadWriteLock (node `__WRIT__`,
    /// which Curator's readers wait for); the default writer shares it with InterProcessMutex
    #[arg(long, conflicts_with = "shared")]
    pub write: bool,
    /// The lock's znode (created as a container if missing)
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
    /// The command to run while holding the lock, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BenchLockArgs {
    /// Sessions contending for the lock (each on its own thread)
    #[arg(long, default_value_t = 2)]
    pub clients: usize,
    /// Acquisitions per client
    #[arg(long, default_value_t = 500)]
    pub rounds: usize,
    /// Sequential create+delete pairs for the raw reference
    #[arg(long, default_value_t = 2000)]
    pub raw_ops: usize,
}

#[derive(Debug, Args)]
pub struct SemaphoreArgs {
    /// How many holders at once (every process sharing the semaphore must agree)
    #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub leases: u32,
    /// Give up if no lease is had within this long (e.g. 30s; 0s: do not wait), exiting with
    /// --conflict-exit-code
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Exit code when no lease was had (--timeout), so it tells apart from CMD's own failure
    #[arg(long, value_name = "N", default_value_t = crate::cmd::exit::CONFLICT)]
    pub conflict_exit_code: u8,
    /// The semaphore's znode (its `locks` and `leases` children are created as containers)
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
    /// The command to run while holding a lease, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum KvCmd {
    /// Serve the key-value store; servers sharing --cluster (and ZooKeeper) form one cluster
    Serve(KvServeArgs),
}

#[derive(Debug, Args)]
pub struct KvServeArgs {
    /// Address for clients and peers (loopback)
    #[arg(long, default_value = "127.0.0.1:7001")]
    pub listen: std::net::SocketAddr,
    /// HOST:PORT the other servers (and clients asking LEADER) reach this one at
    /// [default: the --listen address; required when that is 0.0.0.0 or ::]
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_advertise)]
    pub advertise: Option<String>,
    /// Cluster name: servers with the same name elect one leader under /kv/NAME/election
    #[arg(long, default_value = "default")]
    pub cluster: String,
    /// Copy the leader's state before serving reads (default: start empty, get new writes only)
    #[arg(long)]
    pub catch_up: bool,
    /// File holding a secret shared by the servers; peers prove they know it (without it,
    /// peers are accepted only from loopback)
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Most client connections served at once (peers do not count)
    #[arg(long, default_value_t = 1024)]
    pub max_clients: usize,
    /// How long a request may take to arrive once it began; a slower client is told why
    /// and closed (idle connections between requests are kept)
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub request_timeout: Duration,
    /// How long a write may wait for a leader and for every live replica's ack
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub write_timeout: Duration,
    /// Bytes of recent writes kept for replicas that reconnect (one further behind gets a
    /// snapshot): 64M, 512k, ...
    #[arg(long, value_parser = parse_size, default_value = "64M")]
    pub log_bytes: u64,
}

/// `--advertise`: HOST:PORT with a port, and a host others can reach.
fn parse_advertise(s: &str) -> Result<String, String> {
    let (host, port) = s.rsplit_once(':').ok_or_else(|| format!("{s:?}: write it as HOST:PORT"))?;
    port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("{s:?}: {port:?} is not a port"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
        return Err(format!("{s:?}: other servers cannot reach {host:?}; give a reachable host"));
    }
    Ok(s.to_string())
}

#[derive(Debug, Args)]
pub struct BenchKvArgs {
    /// Concurrent clients
    #[arg(long, default_value_t = 50)]
    pub clients: usize,
    /// How long each phase (GET, PUT) runs
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub duration: Duration,
    /// Distinct keys
    #[arg(long, default_value_t = 10000)]
    pub keys: usize,
    /// Value size in bytes
    #[arg(long, default_value_t = 16)]
    pub value_size: usize,
}

#[derive(Debug, Args)]
pub struct BenchElectionArgs {
    /// Handovers timed per signal
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Session timeout of the kv servers (bounds the SIGKILL handover)
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub server_session_timeout: Duration,
    /// Also time the handover across the rig's three hosts (root; `tools/rig.sh up` first):
    /// a ZooKeeper member and a kv server per host, once per --rig-delay
    #[arg(long)]
    pub hosts_rig: bool,
    /// Latencies added on the rig, one way, between every kv server and the ZooKeeper members
    /// (a user-space TCP proxy; ZooKeeper's own quorum traffic is not delayed); 0 connects
    /// directly
    #[arg(long, value_parser = parse_duration, value_delimiter = ',', default_value = "0ms,50ms")]
    pub rig_delay: Vec<Duration>,
    /// With --hosts-rig: skip the loopback figures
    #[arg(long, requires = "hosts_rig")]
    pub rig_only: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

#[derive(Debug, Subcommand)]
pub enum ElectionCmd {
    /// Campaign for leadership of PATH and run CMD while leader (CMD's exit code is ours)
    Run(ElectionRunArgs),
    /// Print the current leader's id; --watch: then every change of leader
    Leader(ElectionLeaderArgs),
    /// Exit 0 if the candidate with this id leads now, 1 if not (LeaderLatch.hasLeadership)
    IsLeader(ElectionIsLeaderArgs),
}

#[derive(Debug, Args)]
pub struct ElectionRunArgs {
    /// This candidate's id, what `election leader` prints (default: HOSTNAME-PID)
    #[arg(long, value_name = "NAME")]
    pub id: Option<String>,
    /// Say on stderr when this candidate is registered, elected, or follows another
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// The election's znode (created if missing); candidates are its children
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
    /// The command to run while leader, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ElectionLeaderArgs {
    /// Keep running: print the leader's id at once and again at every change (`(none)`
    /// while nobody campaigns)
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// The election's znode
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
}

fn parse_glob(s: &str) -> Result<glob::Pattern, String> {
    glob::Pattern::new(s).map_err(|e| format!("bad glob: {e}"))
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Write to FILE (`.gz`: gzip) instead of stdout (`-o` is the global output format)
    #[arg(long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Include ephemeral nodes (restored as persistent ones)
    #[arg(long)]
    pub ephemeral: bool,
    /// Only nodes whose full path matches GLOB (`*` within a name, `**` across names); repeatable
    #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
    pub include: Vec<glob::Pattern>,
    /// Leave out nodes whose full path matches GLOB, and their subtrees; repeatable
    #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
    pub exclude: Vec<glob::Pattern>,
    /// Root of the subtree
    pub path: String,
}

/// How `load` and `cp` write: the options they share.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Print what would be created, overwritten or skipped; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Replace the data (and ACL) of nodes that exist already
    #[arg(long, conflicts_with = "skip_existing")]
    pub overwrite: bool,
    /// Leave nodes that exist already as they are
    #[arg(long)]
    pub skip_existing: bool,
    /// Raise each parent's cversion to the source's (the dumped or copied one), so
    /// sequential nodes created after the restore continue the old numbering
    #[arg(long)]
    pub preserve_sequence: bool,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Restore under PATH instead of the dumped root
    #[arg(long, value_name = "PATH")]
    pub to: Option<String>,
    #[command(flatten)]
    pub restore: RestoreArgs,
    /// The dump (`-`: stdin; gzip recognised)
    pub file: String,
}

#[derive(Debug, Args)]
pub struct CpArgs {
    #[command(flatten)]
    pub restore: RestoreArgs,
    /// Copy ephemeral nodes too (as persistent ones)
    #[arg(long)]
    pub ephemeral: bool,
    /// Only nodes whose full path matches GLOB; repeatable
    #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
    pub include: Vec<glob::Pattern>,
    /// Leave out nodes whose full path matches GLOB, and their subtrees; repeatable
    #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
    pub exclude: Vec<glob::Pattern>,
    /// PATH or HOSTS:PATH (e.g. 10.0.0.1:2181:/app)
    pub src: String,
    /// PATH or HOSTS:PATH
    pub dst: String,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Compare data only, not ACLs
    #[arg(long)]
    pub no_acl: bool,
    /// PATH, HOSTS:PATH or a dump file
    pub a: String,
    /// PATH, HOSTS:PATH or a dump file
    pub b: String,
}

fn parse_bytes_regex(s: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::Regex::new(s).map_err(|e| e.to_string())
}

fn parse_session_id(s: &str) -> Result<i64, String> {
    crate::cmd::find::parse_session(s)
}

#[derive(Debug, Args)]
pub struct FindArgs {
    /// Node name (last path element) matches GLOB
    #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
    pub name: Option<glob::Pattern>,
    /// Data matches REGEX
    #[arg(long, value_name = "REGEX", value_parser = parse_bytes_regex)]
    pub data: Option<regex::bytes::Regex>,
    /// Ephemeral nodes only
    #[arg(long)]
    pub ephemeral: bool,
    /// Ephemeral nodes of this session only (0x... or decimal)
    #[arg(long, value_name = "SESSION", value_parser = parse_session_id)]
    pub owner: Option<i64>,
    /// Nodes with at least N children
    #[arg(long, value_name = "N")]
    pub min_children: Option<u32>,
    /// Nodes whose data last changed longer ago than D (e.g. 7d, 2h)
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub older_than: Option<Duration>,
    /// Do not descend below this depth (PATH is 0)
    #[arg(long, value_name = "N")]
    pub max_depth: Option<usize>,
    /// Root of the search
    #[arg(default_value = "/")]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct GrepArgs {
    /// Print only the paths of the nodes that match
    #[arg(short = 'l', long)]
    pub files_with_matches: bool,
    /// Regular expression (Rust regex syntax) searched in each node's data, line by line
    #[arg(value_parser = parse_bytes_regex)]
    pub regex: regex::bytes::Regex,
    /// Root of the search
    #[arg(default_value = "/")]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct DuArgs {
    /// Show subtrees down to this depth (PATH is 0)
    #[arg(short = 'd', long, default_value_t = 1)]
    pub depth: usize,
    /// Root
    #[arg(default_value = "/")]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct CountArgs {
    /// Root
    #[arg(default_value = "/")]
    pub path: String,
}

#[derive(Debug, Subcommand)]
pub enum EnsembleCmd {
    /// For every host of --hosts: mode, zxid, lag behind the leader, latency, connections,
    /// outstanding requests, nodes, watches (four-letter words srvr/mntr); exit 1 when a
    /// member is down or not serving
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// AdminServer port, asked when the four-letter words are not whitelisted
    #[arg(long, default_value_t = 8080)]
    pub admin_port: u16,
}

#[derive(Debug, Args)]
pub struct OwnerArgs {
    /// An ephemeral node
    pub path: String,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {}

#[derive(Debug, Args)]
pub struct LeaseArgs {
    /// How long the lease runs from now, whole seconds (e.g. 70m); the same --id renews it
    #[arg(long, value_parser = parse_lease_duration, required_unless_present = "status")]
    pub duration: Option<Duration>,
    /// This holder's identity: the same id renews the lease (default: the host name, as kazoo)
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// N leases at PATH/0 .. PATH/N-1, tried in order (kazoo's MultiNonBlockingLease): at
    /// most N holders at once
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
    /// Print each lease's holder and end (HOLDER, END in UTC, state; tab-separated) and exit
    #[arg(long, conflicts_with_all = ["duration", "id", "command"])]
    pub status: bool,
    /// Exit code when another holder has the lease
    #[arg(long, value_name = "CODE", default_value_t = 75)]
    pub conflict_exit_code: u8,
    /// The lease's znode (created if missing, as kazoo does)
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
    /// The command to run once the lease is obtained, after `--` (none: just take the lease)
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// A lease duration: at least 1s (the record keeps whole seconds), at most 100 years.
fn parse_lease_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(100 * 365 * 86_400) {
        return Err(format!("{s:?}: a lease runs from 1s to 100 years"));
    }
    Ok(d)
}

#[derive(Debug, Args)]
pub struct ElectionIsLeaderArgs {
    /// The candidate's id (what `election run --id` registered)
    #[arg(long, value_name = "NAME")]
    pub id: String,
    /// The election's znode
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// How many participants the transaction has (every participant must say the same)
    #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub participants: u32,
    /// This participant's id, unique in the transaction (a restart under the same id resumes)
    #[arg(long, value_name = "ID")]
    pub id: String,
    /// Abort when not every participant has voted this long after we started (e.g. 30s)
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub timeout: Duration,
    /// The transaction's znode (created if missing); it keeps the votes and the decision
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
    /// The command: run with ZKUTIL_PHASE=prepare (exit 0 votes commit), then with
    /// ZKUTIL_PHASE=commit or abort
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PartitionArgs {
    /// The items to divide (node names), e.g. --set q1 q2 q3
    #[arg(long, value_name = "ITEMS", num_args = 1.., required = true)]
    pub set: Vec<String>,
    /// This member's id, unique in the group (default: HOSTNAME-PID, as kazoo)
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// How long the group must be unchanged before dividing (kazoo's time_boundary)
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub time_boundary: Duration,
    /// Print the share (items separated by spaces, one line per division) instead of
    /// running CMD; keeps running
    #[arg(long, conflicts_with = "command")]
    pub print: bool,
    /// The partition's znode (created if missing): its children are `party` and `locks`
    #[arg(value_parser = parse_znode_path)]
    pub path: String,
    /// Run with the share: one item per line on stdin, and in ZKUTIL_PARTITION (separated by
    /// spaces); it gets SIGTERM when the group changes, and runs again with the new share
    #[arg(last = true, value_name = "CMD", required_unless_present = "print")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Register an instance of NAME for as long as this process (or CMD) lives; prints its id
    Register(ServiceRegisterArgs),
    /// Print NAME's instances (ID, ADDRESS, PORT, PAYLOAD; tab-separated); without NAME, the
    /// service names; --watch: then every change
    List(ServiceListArgs),
}

#[derive(Debug, Args)]
pub struct ServiceRegisterArgs {
    /// The instance's address (host name or IP)
    #[arg(long, value_name = "HOST")]
    pub address: String,
    /// The instance's port
    #[arg(long, value_name = "P")]
    pub port: Option<u16>,
    /// The instance's SSL port
    #[arg(long, value_name = "P")]
    pub ssl_port: Option<u16>,
    /// Any JSON for the instance's payload, e.g. '{"zone":"a"}'
    #[arg(long, value_name = "JSON")]
    pub payload: Option<String>,
    /// Curator's URI spec, e.g. '{scheme}://{address}:{port}'
    #[arg(long, value_name = "SPEC")]
    pub uri_spec: Option<String>,
    /// The instance id (default: a random UUID, as Curator)
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Curator's base path
    #[arg(long, value_name = "PATH", default_value = "/services", value_parser = parse_znode_path)]
    pub base: String,
    /// The service name
    pub name: String,
    /// Command to run as the instance; the registration ends when it exits (its code is ours)
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServiceListArgs {
    /// Keep running: print the instances as `+` lines, then each new one (+) and each gone (`-ID`)
    #[arg(long, short = 'w', requires = "name")]
    pub watch: bool,
    /// Curator's base path
    #[arg(long, value_name = "PATH", default_value = "/services", value_parser = parse_znode_path)]
    pub base: String,
    /// The service name (none: list the service names)
    pub name: Option<String>,
}
