package dev.sluice.javakafka;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.Future;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Describes, produces to and consumes (in a group) one topic of a Kafka
 * broker, printing one line per step, so that a test can check every Java
 * client version against sluice's embedded broker.
 *
 * <pre>
 * java -cp 'classes:lib/*' dev.sluice.javakafka.Main BOOTSTRAP TOPIC COUNT GROUP [USER PASSWORD [CA_PEM]]
 * </pre>
 *
 * With USER and PASSWORD it logs in with SASL SCRAM-SHA-256; with CA_PEM
 * too, over TLS trusting that certificate. It prints
 * "describe TOPIC partitions=N", "produced N", "consumed N distinct=N" and
 * exits 0, or prints the failure and exits 1.
 */
public final class Main {
  public static void main(String[] args) throws Exception {
    if (args.length != 4 && args.length != 6 && args.length != 7) {
      System.err.println("usage: Main BOOTSTRAP TOPIC COUNT GROUP [USER PASSWORD [CA_PEM]]");
      System.exit(2);
    }
    String topic = args[1];
    int count = Integer.parseInt(args[2]);
    String group = args[3];
    Properties common = new Properties();
    common.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    if (args.length >= 6) {
      common.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, args.length == 7 ? "SASL_SSL" : "SASL_PLAINTEXT");
      common.put(SaslConfigs.SASL_MECHANISM, "SCRAM-SHA-256");
      common.put(SaslConfigs.SASL_JAAS_CONFIG,
          "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
              + args[4] + "\" password=\"" + args[5] + "\";");
    }
    if (args.length == 7) {
      common.put(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM");
      common.put(SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, args[6]);
    }
    try {
      describe(common, topic);
      produce(common, topic, count);
      consume(common, topic, count, group);
    } catch (Exception e) {
      System.out.println("failed: " + e);
      e.printStackTrace(System.out);
      System.exit(1);
    }
    System.exit(0);
  }

  static void describe(Properties common, String topic) throws Exception {
    try (Admin admin = Admin.create(common)) {
      Map<String, TopicDescription> d = admin.describeTopics(List.of(topic)).allTopicNames().get();
      TopicDescription td = d.get(topic);
      for (TopicPartitionInfo p : td.partitions()) {
        if (p.leader() == null) {
          throw new IllegalStateException("partition " + p.partition() + " of " + topic + " has no leader");
        }
      }
      System.out.println("describe " + td.name() + " partitions=" + td.partitions().size());
    }
  }

  static void produce(Properties common, String topic, int count) throws Exception {
    Properties p = new Properties();
    p.putAll(common);
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
      List<Future<RecordMetadata>> sent = new ArrayList<>();
      for (int i = 0; i < count; i++) {
        String value = "{\"service\":\"java\",\"user\":\"u" + (i % 7) + "\",\"message\":\"m" + i + "\"}";
        sent.add(producer.send(new ProducerRecord<>(topic, "u" + (i % 7), value)));
      }
      for (Future<RecordMetadata> f : sent) {
        f.get();
      }
    }
    System.out.println("produced " + count);
  }

  static void consume(Properties common, String topic, int count, String group) {
    Properties c = new Properties();
    c.putAll(common);
    c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    Set<String> seen = new HashSet<>();
    int total = 0;
    long deadline = System.nanoTime() + Duration.ofSeconds(120).toNanos();
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
      consumer.subscribe(List.of(topic));
      while (seen.size() < count) {
        if (System.nanoTime() > deadline) {
          throw new IllegalStateException("consumed " + seen.size() + " distinct of " + count + " within 120s");
        }
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
          if (r.value().contains("\"service\":\"java\"")) {
            seen.add(r.value());
            total++;
          }
        }
      }
      consumer.commitSync();
    }
    System.out.println("consumed " + total + " distinct=" + seen.size());
  }
}
