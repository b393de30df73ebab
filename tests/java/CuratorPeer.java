// A peer for zkutil's Curator interop tests (tests/it/curator.rs): Apache Curator's own
// recipes, driven line by line on stdin so that one JVM serves a whole test.
//
//   java -cp CLASSES:JARS CuratorPeer CONNECT_STRING
//
// Each command line starts with a tag the test chooses; every reply line starts with it.
// A holder (lock, lease, leadership, registration) runs on its own thread (Curator's locks
// belong to the thread that took them) until `TAG release`. End of stdin closes the client,
// so every ephemeral node of the peer goes at once.
//
//   TAG mutex|read|write PATH TIMEOUT_MS   InterProcessMutex / InterProcessReadWriteLock
//                                          -> TAG acquired US | TAG timeout; TAG release -> TAG released US
//   TAG semaphore PATH N TIMEOUT_MS        InterProcessSemaphoreV2 -> as above
//   TAG loop PATH N HOLD_MS                N times: InterProcessMutex, TAG start US, hold, TAG end US, release;
//                                          then TAG done
//   TAG latch PATH ID                      LeaderLatch -> TAG leader US; TAG release -> TAG released US
//                                          (once closed: its node is gone)
//   TAG register BASE NAME ID ADDRESS PORT PAYLOAD_JSON   ServiceDiscovery (payload: a Map)
//                                          -> TAG registered; TAG release -> TAG released US (unregistered)
//   TAG query BASE NAME                    queryForInstances -> per instance a tab-separated line
//                                          TAG instance ID ADDRESS PORT SSLPORT PAYLOAD_JSON URI TYPE; then TAG done
//   TAG barrier PATH COUNT TIMEOUT_MS      DistributedDoubleBarrier: enter, leave
//                                          -> TAG entered US, TAG left US (or TAG timeout)
//   TAG delayconsume PATH                  DistributedDelayQueue consumer (raw bytes)
//                                          -> TAG started; per item TAG item US MESSAGE
//
// Times (US) are microseconds since the epoch. A failure prints `TAG error ...`.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Collection;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.framework.recipes.queue.DistributedDelayQueue;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueConsumer;
import org.apache.curator.framework.recipes.queue.QueueSerializer;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.RetryNTimes;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.UriSpec;

@SuppressWarnings({"rawtypes", "unchecked"})
public class CuratorPeer {
    static final Map<String, CountDownLatch> releases = new ConcurrentHashMap<>();
    static final ObjectMapper json = new ObjectMapper();
    static CuratorFramework client;

    static synchronized void say(String tag, String... words) {
        StringBuilder b = new StringBuilder(tag);
        for (String w : words) b.append(' ').append(w);
        System.out.println(b);
        System.out.flush();
    }

    static String now() {
        return Long.toString(ChronoUnit.MICROS.between(Instant.EPOCH, Instant.now()));
    }

    interface Body {
        void run() throws Exception;
    }

    /** Runs `body` on its own thread; a failure becomes `TAG error ...`. */
    static void spawn(String tag, Body body) {
        Thread t = new Thread(() -> {
            try {
                body.run();
            } catch (Throwable e) {
                say(tag, "error", String.valueOf(e).replace('\n', ' '));
            }
        });
        t.setDaemon(true);
        t.start();
    }

    /** Blocks until `TAG release`. */
    static void awaitRelease(String tag) throws InterruptedException {
        releases.computeIfAbsent(tag, k -> new CountDownLatch(1)).await();
    }

    public static void main(String[] args) throws Exception {
        client = CuratorFrameworkFactory.newClient(args[0], 10000, 5000, new RetryNTimes(10, 200));
        client.start();
        if (!client.blockUntilConnected(20, TimeUnit.SECONDS)) {
            System.err.println("CuratorPeer: cannot connect to " + args[0]);
            System.exit(1);
        }
        System.out.println("ready");
        System.out.flush();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) continue;
            String[] w = line.trim().split(" ", 8);
            String tag = w[0];
            try {
                command(tag, w);
            } catch (Throwable e) {
                say(tag, "error", String.valueOf(e).replace('\n', ' '));
            }
        }
        client.close();
        System.exit(0);
    }

    static void command(String tag, String[] w) throws Exception {
        switch (w[1]) {
            case "release":
                releases.computeIfAbsent(tag, k -> new CountDownLatch(1)).countDown();
                break;
            case "mutex":
            case "read":
            case "write": {
                String kind = w[1], path = w[2];
                long timeout = Long.parseLong(w[3]);
                spawn(tag, () -> {
                    InterProcessMutex m = kind.equals("mutex")
                        ? new InterProcessMutex(client, path)
                        : kind.equals("read")
                            ? new InterProcessReadWriteLock(client, path).readLock()
                            : new InterProcessReadWriteLock(client, path).writeLock();
                    if (!m.acquire(timeout, TimeUnit.MILLISECONDS)) {
                        say(tag, "timeout");
                        return;
                    }
                    say(tag, "acquired", now());
                    awaitRelease(tag);
                    String t = now();
                    m.release();
                    say(tag, "released", t);
                });
                break;
            }
            case "semaphore": {
                String path = w[2];
                int n = Integer.parseInt(w[3]);
                long timeout = Long.parseLong(w[4]);
                spawn(tag, () -> {
                    InterProcessSemaphoreV2 s = new InterProcessSemaphoreV2(client, path, n);
                    Lease lease = s.acquire(timeout, TimeUnit.MILLISECONDS);
                    if (lease == null) {
                        say(tag, "timeout");
                        return;
                    }
                    say(tag, "acquired", now());
                    awaitRelease(tag);
                    String t = now();
                    s.returnLease(lease);
                    say(tag, "released", t);
                });
                break;
            }
            case "loop": {
                String path = w[2];
                int n = Integer.parseInt(w[3]);
                long hold = Long.parseLong(w[4]);
                spawn(tag, () -> {
                    InterProcessMutex m = new InterProcessMutex(client, path);
                    for (int i = 0; i < n; i++) {
                        m.acquire();
                        say(tag, "start", now());
                        Thread.sleep(hold);
                        say(tag, "end", now());
                        m.release();
                    }
                    say(tag, "done");
                });
                break;
            }
            case "latch": {
                String path = w[2], id = w[3];
                spawn(tag, () -> {
                    try (LeaderLatch latch = new LeaderLatch(client, path, id)) {
                        latch.start();
                        latch.await();
                        say(tag, "leader", now());
                        awaitRelease(tag);
                    }
                    say(tag, "released", now());
                });
                break;
            }
            case "register": {
                String base = w[2], name = w[3], id = w[4], address = w[5];
                int port = Integer.parseInt(w[6]);
                Map payload = json.readValue(w[7], Map.class);
                spawn(tag, () -> {
                    ServiceInstance<Map> inst = ServiceInstance.<Map>builder()
                        .name(name).id(id).address(address).port(port).payload(payload)
                        .uriSpec(new UriSpec("{scheme}://{address}:{port}/x")).build();
                    try (ServiceDiscovery<Map> sd = ServiceDiscoveryBuilder.builder(Map.class)
                            .client(client).basePath(base).thisInstance(inst).build()) {
                        sd.start();
                        say(tag, "registered");
                        awaitRelease(tag);
                    }
                    say(tag, "released", now());
                });
                break;
            }
            case "query": {
                String base = w[2], name = w[3];
                try (ServiceDiscovery<Map> sd = ServiceDiscoveryBuilder.builder(Map.class)
                        .client(client).basePath(base).build()) {
                    sd.start();
                    Collection<ServiceInstance<Map>> all = sd.queryForInstances(name);
                    for (ServiceInstance<Map> i : all) {
                        System.out.flush();
                        String uri = i.getUriSpec() == null ? "-" : i.buildUriSpec();
                        synchronized (CuratorPeer.class) {
                            System.out.println(String.join("\t", tag + " instance", i.getId(), i.getAddress(),
                                String.valueOf(i.getPort()), String.valueOf(i.getSslPort()),
                                json.writeValueAsString(i.getPayload()), uri,
                                String.valueOf(i.getServiceType())));
                            System.out.flush();
                        }
                    }
                }
                say(tag, "done");
                break;
            }
            case "barrier": {
                String path = w[2];
                int count = Integer.parseInt(w[3]);
                long timeout = Long.parseLong(w[4]);
                spawn(tag, () -> {
                    DistributedDoubleBarrier b = new DistributedDoubleBarrier(client, path, count);
                    if (!b.enter(timeout, TimeUnit.MILLISECONDS)) {
                        say(tag, "timeout");
                        return;
                    }
                    say(tag, "entered", now());
                    if (!b.leave(timeout, TimeUnit.MILLISECONDS)) {
                        say(tag, "timeout");
                        return;
                    }
                    say(tag, "left", now());
                });
                break;
            }
            case "delayconsume": {
                QueueSerializer<byte[]> raw = new QueueSerializer<byte[]>() {
                    public byte[] serialize(byte[] b) { return b; }
                    public byte[] deserialize(byte[] b) { return b; }
                };
                QueueConsumer<byte[]> consumer = new QueueConsumer<byte[]>() {
                    public void consumeMessage(byte[] m) { say(tag, "item", now(), new String(m)); }
                    public void stateChanged(CuratorFramework c, ConnectionState s) {}
                };
                DistributedDelayQueue<byte[]> q = QueueBuilder.builder(client, consumer, raw, w[2]).buildDelayQueue();
                q.start(); // closed with the client at the end of stdin
                say(tag, "started");
                break;
            }
            default:
                say(tag, "error", "unknown command " + w[1]);
        }
    }
}
