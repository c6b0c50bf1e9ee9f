// A Kafka Streams application whose group uses the `streams` rebalance protocol (KIP-1071),
// for the broker tests: it reads every record of one topic, does nothing with it and commits
// every 100 ms. Prints `running` once the application runs; closes when its standard input
// closes.
//
// Usage: java StreamsApp.java <bootstrap> <application id = group> <topic> <state dir>

import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;

public class StreamsApp {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        p.put("application.id", args[1]);
        p.put("state.dir", args[3]);
        p.put("group.protocol", "streams");
        p.put("commit.interval.ms", "100");
        p.put("num.stream.threads", "1");
        p.put("default.key.serde", Serdes.ByteArray().getClass().getName());
        p.put("default.value.serde", Serdes.ByteArray().getClass().getName());
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(args[2]).foreach((k, v) -> { });
        KafkaStreams streams = new KafkaStreams(builder.build(), p);
        CountDownLatch running = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING) {
                running.countDown();
            }
            if (now == KafkaStreams.State.ERROR) {
                System.out.println("error");
                System.exit(1);
            }
        });
        streams.start();
        running.await();
        System.out.println("running");
        System.out.flush();
        while (System.in.read() != -1) {
        }
        streams.close();
    }
}
