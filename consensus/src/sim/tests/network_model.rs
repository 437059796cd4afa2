//! The network follows the documented fault model: the lab's loss rates and delays,
//! long reordering of responses, connectivity checked at send and at delivery.

use crate::sim::clock::MS;
use crate::sim::network::{NetConfig, Network};
use crate::sim::rng::SimRng;
use crate::{Message, MessageBody};

fn request(from: u64, to: u64) -> Message {
    Message {
        from,
        to,
        term: 1,
        body: MessageBody::RequestVote {
            last_log_index: 0,
            last_log_term: 0,
        },
    }
}

fn response(from: u64, to: u64) -> Message {
    Message {
        from,
        to,
        term: 1,
        body: MessageBody::RequestVoteResponse { granted: true },
    }
}

#[test]
fn unreliable_network_loses_about_ten_percent_and_delays_up_to_26_ms() {
    let mut net = Network::new(3, NetConfig::lab(false));
    let mut rng = SimRng::new(9);
    let n = 20_000;
    let mut lost = 0;
    for _ in 0..n {
        match net.plan_message(&request(1, 2), &mut rng) {
            None => lost += 1,
            Some(d) => assert!(d <= 26 * MS, "delay {d}"),
        }
    }
    let rate = f64::from(lost) / f64::from(n);
    assert!((0.085..0.115).contains(&rate), "loss rate {rate}");
    assert_eq!(net.stats().rpcs_sent, n as u64);
}

#[test]
fn reliable_network_loses_nothing_and_long_reordering_holds_back_responses() {
    let mut config = NetConfig::lab(true);
    config.long_reordering = true;
    let mut net = Network::new(2, config);
    let mut rng = SimRng::new(3);
    let mut held = 0;
    for _ in 0..3000 {
        let d = net
            .plan_message(&request(1, 2), &mut rng)
            .expect("reliable");
        assert!(d < MS, "a request is never held back ({d})");
        let d = net
            .plan_message(&response(2, 1), &mut rng)
            .expect("reliable");
        if d >= 200 * MS {
            assert!(d <= 2201 * MS);
            held += 1;
        }
    }
    let rate = f64::from(held) / 3000.0;
    assert!((0.62..0.71).contains(&rate), "held back {rate}");
}

#[test]
fn links_are_checked_when_sent_and_when_delivered_and_counted_like_labrpc() {
    let mut net = Network::new(3, NetConfig::lab(true));
    let mut rng = SimRng::new(1);
    net.set_connected(2, false);
    assert_eq!(net.plan_message(&request(1, 2), &mut rng), None);
    net.set_connected(2, true);
    let m = request(1, 2);
    assert!(net.plan_message(&m, &mut rng).is_some());
    net.partition(&[vec![1], vec![2, 3]]);
    assert!(!net.deliver(&m), "cut while in flight");
    net.heal_links();
    assert!(net.deliver(&m));
    assert_eq!(net.stats().rpcs_received, vec![0, 1, 0]);
    // Requests count at send, responses at delivery.
    let r = response(2, 1);
    let before = net.stats().bytes_total;
    net.plan_message(&r, &mut rng);
    assert_eq!(net.stats().bytes_total, before);
    net.deliver(&r);
    assert_eq!(net.stats().bytes_total, before + r.encoded_len() as u64);
    // One-way cuts.
    net.set_link(3, 1, false);
    assert!(!net.link_up(3, 1));
    assert!(net.link_up(1, 3));
}
