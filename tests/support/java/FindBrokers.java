// ActiveMQ's own multicast discovery agent, as its clients use it: prints
// the name and service URI of the first broker it finds, or exits 1 after
// the given milliseconds. Run as: java -cp ACTIVEMQ_JARS FindBrokers.java
// multicast://ADDRESS:PORT GROUP MILLISECONDS
import java.net.URI;
import org.apache.activemq.command.DiscoveryEvent;
import org.apache.activemq.transport.discovery.DiscoveryListener;
import org.apache.activemq.transport.discovery.multicast.MulticastDiscoveryAgent;

public class FindBrokers {
    public static void main(String[] args) throws Exception {
        MulticastDiscoveryAgent agent = new MulticastDiscoveryAgent();
        agent.setDiscoveryURI(new URI(args[0]));
        agent.setGroup(args[1]);
        agent.setDiscoveryListener(new DiscoveryListener() {
            public void onServiceAdd(DiscoveryEvent event) {
                System.out.println(event.getBrokerName() + " " + event.getServiceName());
                System.out.flush();
                Runtime.getRuntime().halt(0);
            }

            public void onServiceRemove(DiscoveryEvent event) {
            }
        });
        agent.start();
        Thread.sleep(Long.parseLong(args[2]));
        Runtime.getRuntime().halt(1);
    }
}
