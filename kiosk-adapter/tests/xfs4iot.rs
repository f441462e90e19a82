//! The XFS4IoT driver against the fake XFS4IoT service, over real WebSockets.

use std::time::{Duration, Instant};

use kiosk_adapter::sim::SimulatedDevices;
use kiosk_adapter::xfs4iot::fake::{PICTURE_SIZE, TRACK2};
use kiosk_adapter::xfs4iot::{DeviceEvent, FakeXfs, Outcome, XfsClient, XfsDevices};
use serde_json::{json, Value};
use tokio::sync::broadcast;

const SHORT: Duration = Duration::from_secs(2);

async fn setup() -> (FakeXfs, XfsDevices) {
    let fake = FakeXfs::start().await;
    let devices = XfsDevices::discover(&fake.publisher_url(), SHORT)
        .await
        .expect("discovery");
    (fake, devices)
}

/// The commands `name` received, as full messages.
fn sent(fake: &FakeXfs, name: &str) -> Vec<Value> {
    fake.received_commands()
        .into_iter()
        .filter(|(_, m)| m["header"]["name"] == name)
        .map(|(_, m)| m)
        .collect()
}

async fn next_event(rx: &mut broadcast::Receiver<DeviceEvent>) -> DeviceEvent {
    tokio::time::timeout(SHORT, rx.recv())
        .await
        .expect("an event in time")
        .expect("event channel open")
}

#[tokio::test]
async fn discovery_finds_every_service_and_tells_the_printers_apart_by_name() {
    let (fake, devices) = setup().await;
    assert_eq!(
        devices.kinds(),
        vec![
            "card_reader",
            "pin_pad",
            "receipt_printer",
            "queue_printer",
            "camera"
        ]
    );
    assert_eq!(
        devices.service_uri("receipt_printer"),
        Some(fake.service_url("receiptprinter").as_str())
    );
    assert_eq!(
        devices.service_uri("queue_printer"),
        Some(fake.service_url("queueprinter").as_str())
    );
    assert_eq!(fake.count("ServicePublisher.GetServices"), 1);
    assert_eq!(fake.count("Common.Capabilities"), 5);
    assert!(devices
        .capabilities()
        .contains(&"device:pin_pad".to_string()));
}

#[tokio::test]
async fn an_unreachable_publisher_fails_discovery_quickly() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/xfs4iot/v1.0", closed.local_addr().unwrap());
    drop(closed);
    let started = Instant::now();
    assert!(XfsDevices::discover(&url, SHORT).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn every_action_answers_in_the_shape_of_the_simulated_devices() {
    let (fake, devices) = setup().await;
    let sim = SimulatedDevices::new();
    let calls = [
        ("card_reader", "read", json!({})),
        ("pin_pad", "enter_pin", json!({})),
        (
            "receipt_printer",
            "print",
            json!({"fields": {"title": "交易明细", "card": "**** 6789"}}),
        ),
        (
            "queue_printer",
            "print_ticket",
            json!({"ticket": "A012", "counter": "对公柜台", "waiting": 3}),
        ),
        ("card_reader", "eject", json!({})),
        ("card_reader", "read", json!({})),
        ("card_reader", "retain", json!({})),
    ];
    for (i, (device, action, args)) in calls.iter().enumerate() {
        let id = format!("c{i}");
        let real = devices.handle(&id, device, action, args).await.unwrap();
        let simulated = sim.handle(&id, device, action, args).unwrap();
        assert_eq!(real, simulated, "{device}.{action}");
    }

    let photo = devices
        .handle("cam", "camera", "capture", &json!({}))
        .await
        .unwrap();
    let simulated = sim.handle("cam", "camera", "capture", &json!({})).unwrap();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&photo), keys(&simulated));
    assert_eq!(photo["width"], PICTURE_SIZE.0);
    assert_eq!(photo["height"], PICTURE_SIZE.1);
    let hash = photo["image_hash"].as_str().unwrap();
    assert!(
        hash.starts_with("sha256:") && hash.len() == 7 + 64,
        "{hash}"
    );

    // What went over the wire.
    let read = &sent(&fake, "CardReader.ReadRawData")[0];
    assert_eq!(read["header"]["type"], "command");
    assert_eq!(read["header"]["version"], "2.0");
    assert!(read["header"]["timeout"].as_u64().unwrap() > 0);
    assert_eq!(read["payload"]["track2"], true);
    let pin_block = &sent(&fake, "PinPad.GetPinBlock")[0]["payload"];
    let pan = TRACK2.split('=').next().unwrap();
    assert_eq!(pin_block["customerData"], pan[..pan.len() - 1]);
    assert_eq!(pin_block["format"], "iso0");
    let entry = &sent(&fake, "Keyboard.PinEntry")[0]["payload"];
    assert_eq!(entry["activeKeys"]["enter"]["terminate"], true);
    let forms = sent(&fake, "Printer.PrintForm");
    assert_eq!(forms[0]["payload"]["formName"], "ConciergeReceipt");
    assert_eq!(forms[0]["payload"]["fields"]["title"], "交易明细");
    assert_eq!(forms[1]["payload"]["formName"], "ConciergeTicket");
    assert_eq!(forms[1]["payload"]["fields"]["waiting"], "3");
    let moves: Vec<Value> = sent(&fake, "CardReader.Move")
        .iter()
        .map(|m| m["payload"]["to"].clone())
        .collect();
    assert_eq!(moves, vec![json!("exit"), json!("unit1")]);
    assert_eq!(
        sent(&fake, "Camera.TakePicture")[0]["payload"]["camera"],
        "person"
    );
    // Request ids increase on each connection.
    let ids: Vec<u64> = sent(&fake, "CardReader.ReadRawData")
        .iter()
        .map(|m| m["header"]["requestId"].as_u64().unwrap())
        .collect();
    assert!(ids[0] < ids[1]);
}

#[tokio::test]
async fn error_completions_map_to_our_stable_codes() {
    let (fake, devices) = setup().await;
    let cases = [
        (
            "CardReader.ReadRawData",
            Outcome::error("commandErrorCode", Some("noMedia")),
            ("card_reader", "read"),
            "no_card",
        ),
        (
            "CardReader.ReadRawData",
            Outcome::error("commandErrorCode", Some("invalidMedia")),
            ("card_reader", "read"),
            "read_error",
        ),
        (
            "Printer.PrintForm",
            Outcome::error("commandErrorCode", Some("paperOut")),
            ("queue_printer", "print_ticket"),
            "paper_out",
        ),
        (
            "CardReader.Move",
            Outcome::error("deviceNotReady", None),
            ("card_reader", "eject"),
            "device_not_ready",
        ),
        (
            "Camera.TakePicture",
            Outcome::error("hardwareError", None),
            ("camera", "capture"),
            "hardware_error",
        ),
        (
            "CardReader.ReadRawData",
            Outcome::error("timeOut", None),
            ("card_reader", "read"),
            "timeout",
        ),
        (
            "CardReader.ReadRawData",
            Outcome::error("canceled", None),
            ("card_reader", "read"),
            "cancelled",
        ),
        (
            "Printer.PrintForm",
            Outcome::error("unsupportedCommand", None),
            ("receipt_printer", "print"),
            "unsupported",
        ),
        (
            "Printer.PrintForm",
            Outcome::Reject("tooManyRequests".into()),
            ("receipt_printer", "print"),
            "device_not_ready",
        ),
        (
            "CardReader.ReadRawData",
            Outcome::SuccessWith(json!({"track2": {"status": "dataInvalid"}})),
            ("card_reader", "read"),
            "read_error",
        ),
    ];
    for (i, (command, outcome, (device, action), code)) in cases.into_iter().enumerate() {
        fake.script(command, outcome);
        let e = devices
            .handle(&format!("e{i}"), device, action, &json!({}))
            .await
            .unwrap_err();
        assert_eq!(e.code, code, "{command}");
        assert!(!e.message.is_empty());
    }
}

#[tokio::test]
async fn the_customer_cancelling_the_pin_entry_is_cancelled_and_no_pin_block_is_asked() {
    let (fake, devices) = setup().await;
    devices
        .handle("r", "card_reader", "read", &json!({}))
        .await
        .unwrap();
    fake.script(
        "Keyboard.PinEntry",
        Outcome::SuccessWith(json!({"digits": 0, "completion": "cancel"})),
    );
    let e = devices
        .handle("p", "pin_pad", "enter_pin", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "cancelled");
    assert_eq!(fake.count("PinPad.GetPinBlock"), 0);
}

#[tokio::test]
async fn a_pin_entry_without_a_card_read_is_refused() {
    let (fake, devices) = setup().await;
    let e = devices
        .handle("p", "pin_pad", "enter_pin", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "no_card");
    assert_eq!(fake.count("Keyboard.PinEntry"), 0);
}

#[tokio::test]
async fn a_command_that_never_completes_times_out_and_is_cancelled() {
    let (fake, devices) = setup().await;
    fake.script("CardReader.ReadRawData", Outcome::Never);
    let started = Instant::now();
    let e = devices
        .handle_with_timeout(
            "t1",
            "card_reader",
            "read",
            &json!({}),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.code, "timeout");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(1),
        "{took:?}"
    );

    assert!(fake.wait_for("Common.Cancel", 1, SHORT).await);
    let read_id = sent(&fake, "CardReader.ReadRawData")[0]["header"]["requestId"].clone();
    let cancel = &sent(&fake, "Common.Cancel")[0];
    assert_eq!(cancel["payload"]["requestIds"], json!([read_id]));
    assert_eq!(
        sent(&fake, "CardReader.ReadRawData")[0]["header"]["timeout"],
        300
    );

    // The reader is usable again.
    let card = devices
        .handle("t2", "card_reader", "read", &json!({}))
        .await
        .unwrap();
    assert_eq!(card["card_last4"], "6789");
}

#[tokio::test]
async fn a_repeated_call_id_prints_once_and_returns_the_first_result() {
    let (fake, devices) = setup().await;
    let args = json!({"fields": {"ticket": "A001"}});
    let (a, b) = tokio::join!(
        devices.handle("same", "queue_printer", "print_ticket", &args),
        devices.handle("same", "queue_printer", "print_ticket", &args),
    );
    let c = devices
        .handle("same", "queue_printer", "print_ticket", &args)
        .await;
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(fake.count("Printer.PrintForm"), 1);

    // A caller that stops waiting does not make a retry print again.
    let impatient = tokio::time::timeout(
        Duration::from_millis(1),
        devices.handle("slow", "receipt_printer", "print", &args),
    )
    .await;
    let retried = devices
        .handle("slow", "receipt_printer", "print", &args)
        .await
        .unwrap();
    assert_eq!(retried["printed"], true);
    assert!(impatient.is_err() || impatient.unwrap().is_ok());
    assert_eq!(fake.count("Printer.PrintForm"), 2);
}

#[tokio::test]
async fn malformed_frames_from_the_service_are_ignored() {
    let (fake, devices) = setup().await;
    for frame in [
        "{",
        "[]",
        r#"{"header": {"type": "completion", "name": "CardReader.ReadRawData"}}"#,
        r#"{"header": {"type": "completion", "name": "X.Y", "requestId": 424242,
             "completionCode": "success"}, "payload": {}}"#,
        r#"{"header": {"type": "acknowledge", "name": "X.Y", "requestId": 1,
             "status": "invalidMessage"}}"#,
    ] {
        fake.send_raw("cardreader", frame);
    }
    fake.script("CardReader.ReadRawData", Outcome::Garbage);
    let card = devices
        .handle("g", "card_reader", "read", &json!({}))
        .await
        .unwrap();
    assert_eq!(card["card_number"], "6222021001123456789");
}

#[tokio::test]
async fn a_lost_connection_fails_the_calls_in_flight_and_the_next_call_reconnects() {
    let (fake, devices) = setup().await;
    let mut events = devices.events();

    fake.script("CardReader.ReadRawData", Outcome::Never);
    let started = Instant::now();
    let no_args = json!({});
    let (result, ()) = tokio::join!(
        devices.handle_with_timeout(
            "l1",
            "card_reader",
            "read",
            &no_args,
            Duration::from_secs(4)
        ),
        async {
            assert!(fake.wait_for("CardReader.ReadRawData", 1, SHORT).await);
            fake.disconnect("cardreader");
        }
    );
    assert_eq!(result.unwrap_err().code, "connection_lost");
    assert!(started.elapsed() < Duration::from_secs(2));
    let e = next_event(&mut events).await;
    assert_eq!(
        (e.device.as_str(), e.event.as_str()),
        ("card_reader", "offline")
    );

    // The service dropping the connection mid-command fails it the same way.
    fake.script("Printer.PrintForm", Outcome::Disconnect);
    let e = devices
        .handle("l2", "receipt_printer", "print", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "connection_lost");

    let card = devices
        .handle("l3", "card_reader", "read", &json!({}))
        .await
        .unwrap();
    assert_eq!(card["card_last4"], "6789");
    assert_eq!(fake.connections("cardreader"), 1);
    loop {
        let e = next_event(&mut events).await;
        if e.device == "card_reader" {
            assert_eq!(e.event, "online");
            break;
        }
    }
}

#[tokio::test]
async fn unsolicited_device_events_surface_in_our_words() {
    let (fake, devices) = setup().await;
    let mut events = devices.events();

    fake.unsolicited("cardreader", "CardReader.MediaRemovedEvent", json!({}));
    let e = next_event(&mut events).await;
    assert_eq!(
        (e.device.as_str(), e.event.as_str()),
        ("card_reader", "card_removed")
    );

    fake.unsolicited(
        "queueprinter",
        "Printer.PaperThresholdEvent",
        json!({"paperSource": "upper", "threshold": "low"}),
    );
    let e = next_event(&mut events).await;
    assert_eq!(
        (e.device.as_str(), e.event.as_str()),
        ("queue_printer", "paper_low")
    );
    assert_eq!(e.data, Some(json!({"paper_source": "upper"})));

    fake.unsolicited(
        "receiptprinter",
        "Printer.PaperThresholdEvent",
        json!({"paperSource": "upper", "threshold": "out"}),
    );
    let e = next_event(&mut events).await;
    assert_eq!(
        (e.device.as_str(), e.event.as_str()),
        ("receipt_printer", "paper_out")
    );

    fake.unsolicited(
        "camera",
        "Common.StatusChangedEvent",
        json!({"common": {"device": "offline"}}),
    );
    let e = next_event(&mut events).await;
    assert_eq!((e.device.as_str(), e.event.as_str()), ("camera", "offline"));

    // Unmapped unsolicited messages are no events.
    fake.unsolicited("pinpad", "Keyboard.LayoutEvent", json!({}));
    fake.unsolicited("cardreader", "CardReader.MediaRemovedEvent", json!({}));
    let e = next_event(&mut events).await;
    assert_eq!(e.event, "card_removed");
}

#[tokio::test]
async fn unknown_devices_and_actions_are_errors_not_panics() {
    let (_fake, devices) = setup().await;
    let e = devices
        .handle("u1", "camera", "fly", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "unsupported_action");
    let e = devices
        .handle("u2", "id_card", "read", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "no_device");
}

#[tokio::test]
async fn the_client_routes_events_by_request_id_and_reports_error_codes() {
    let fake = FakeXfs::start().await;
    let (client, _unsolicited) = XfsClient::connect(&fake.service_url("cardreader"), SHORT)
        .await
        .unwrap();
    let c = client
        .command("CardReader.ReadRawData", json!({"track2": true}), SHORT)
        .await
        .unwrap();
    assert!(c.is_success());
    assert_eq!(
        c.events,
        vec![
            "CardReader.InsertCardEvent",
            "CardReader.MediaInsertedEvent"
        ]
    );
    assert_eq!(c.request_id, 1);

    fake.script(
        "CardReader.Move",
        Outcome::error("commandErrorCode", Some("mediaJam")),
    );
    let c = client
        .command("CardReader.Move", json!({"to": "exit"}), SHORT)
        .await
        .unwrap();
    assert_eq!(c.completion_code, "commandErrorCode");
    assert_eq!(c.error_code.as_deref(), Some("mediaJam"));
    assert_eq!(c.request_id, 2);

    // A command of an interface the service does not implement.
    let c = client
        .command("Printer.PrintRaw", json!({}), SHORT)
        .await
        .unwrap();
    assert_eq!(c.completion_code, "unsupportedCommand");
}
