// One member of a share group (KIP-932), for the broker tests: it accepts exactly `quota`
// records, prints each as `accepted <partition> <offset>`, releases any other record it was
// given (so it goes back to the group), commits the acknowledgements and prints `done`; then it
// stays a live member, without fetching, until its standard input closes. Each `release` line
// on its standard input makes it fetch once more (waiting up to 30 s for records), release all
// it gets and print `released <count>`.
//
// Usage: java ShareWorker.java <bootstrap> <group> <topic> <quota>
// The group's `share.auto.offset.reset` is set to `earliest` first, so records produced before
// the member joined are delivered.

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class ShareWorker {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], group = args[1], topic = args[2];
        int quota = Integer.parseInt(args[3]);
        Properties admin = new Properties();
        admin.put("bootstrap.servers", bootstrap);
        try (Admin a = Admin.create(admin)) {
            ConfigResource resource = new ConfigResource(ConfigResource.Type.GROUP, group);
            AlterConfigOp reset = new AlterConfigOp(
                new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET);
            a.incrementalAlterConfigs(Map.of(resource, List.of(reset))).all().get();
        }
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("group.id", group);
        p.put("share.acknowledgement.mode", "explicit");
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        KafkaShareConsumer<byte[], byte[]> consumer = new KafkaShareConsumer<>(p);
        consumer.subscribe(List.of(topic));
        long deadline = System.currentTimeMillis() + 90_000;
        int accepted = 0;
        while (accepted < quota) {
            if (System.currentTimeMillis() > deadline) {
                System.out.println("timeout after " + accepted + " records");
                System.exit(1);
            }
            for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                if (accepted < quota) {
                    consumer.acknowledge(r, AcknowledgeType.ACCEPT);
                    accepted++;
                    System.out.println("accepted " + r.partition() + " " + r.offset());
                } else {
                    consumer.acknowledge(r, AcknowledgeType.RELEASE);
                }
            }
            consumer.commitSync();
        }
        System.out.println("done");
        System.out.flush();
        java.io.BufferedReader in = new java.io.BufferedReader(new java.io.InputStreamReader(System.in));
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            if (!line.equals("release")) {
                continue;
            }
            int released = 0;
            long until = System.currentTimeMillis() + 30_000;
            while (released == 0 && System.currentTimeMillis() < until) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    consumer.acknowledge(r, AcknowledgeType.RELEASE);
                    released++;
                }
            }
            consumer.commitSync();
            System.out.println("released " + released);
            System.out.flush();
        }
        consumer.close();
    }
}
