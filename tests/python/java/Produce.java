// The Kafka Java client, configured by a properties file, sends one record:
// `java -cp 'libs/*' Produce.java client.properties topic` prints OK or fails.
// Run as a single source file, so the tests need no build step for it.

import java.io.FileReader;
import java.util.Properties;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;

public class Produce {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        try (FileReader reader = new FileReader(args[0])) {
            props.load(reader);
        }
        props.put("key.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        props.put("value.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        props.put("max.block.ms", "20000");
        props.put("request.timeout.ms", "10000");
        props.put("delivery.timeout.ms", "20000");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            producer.send(new ProducerRecord<>(args[1], "hello from java")).get();
        }
        System.out.println("OK");
    }
}
