//! `concierge eval kiosk`'s logic on a tiny inline set: each question is asked over the
//! kiosk WebSocket of an application built in-process, and judged. Checks that the
//! classification is computed and consistent, not how accurate the kiosk is.

use std::path::Path;

use concierge::client::eval::verdict::{self, Verdict};
use concierge::client::eval::{self, set, EvalApp};
use concierge::config::Settings;

use crate::helpers::project_root;

const SET: &str = "\
- text: 你们周六几点开门
  expect: {article: opening-hours}
  category: plain
- text: 今天上证指数多少点
  expect: {unknown: true}
  category: no_answer
- text: 帮我取个号，我要存钱
  expect: {journey: queue.take_number}
  category: task
- text: 呜啦啦呜啦啦
  expect: {article: card-loss}
  category: plain
";

#[tokio::test]
async fn a_set_is_asked_through_the_kiosk_and_each_answer_is_judged() {
    let settings = Settings::for_tests("sqlite://unused.db", &project_root());
    let catalog = set::catalog(&settings.data.knowledge_dir).unwrap();
    let items = set::parse(Path::new("inline.yaml"), SET, &catalog).unwrap();
    let (settings, _scratch) = eval::isolated(settings).unwrap();
    let app = EvalApp::start(settings, "B001").await.unwrap();
    let report = app.run("inline.yaml", &items).await.unwrap();

    assert_eq!(report.overall.total, 4);
    let t = &report.overall;
    assert_eq!(t.right + t.clarified + t.dont_know + t.wrong, 4);
    assert_eq!(report.categories["plain"].total, 2);
    assert_eq!(report.categories["task"].total, 1);
    assert_eq!(report.outcomes.len(), 4);
    assert_eq!(
        report.misses.len(),
        report
            .outcomes
            .iter()
            .filter(|o| o.verdict != Verdict::Right)
            .count()
    );
    for (item, outcome) in items.iter().zip(&report.outcomes) {
        assert_eq!(outcome.text, item.text);
        assert_eq!(outcome.line, item.line);
        assert_eq!(outcome.expected, verdict::expected(&item.expect));
        assert!(!outcome.got.is_empty());
    }
    // The same question asked again, in a session of its own, is judged the same way.
    let again = app.ask(&items[2].text).await.unwrap();
    let (v, got) = verdict::judge(&items[2].expect, &again);
    assert_eq!(v, report.outcomes[2].verdict);
    assert_eq!(got, report.outcomes[2].got);
    // Gibberish shows no article and starts no journey: never judged right.
    assert_ne!(report.outcomes[3].verdict, Verdict::Right);
    app.stop().await;
}
