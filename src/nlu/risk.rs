//! Risk flags (e.g. `fraud_suspected`): patterns over what the customer says, declared in
//! `dialogs/risk.yaml` and compiled once. Money-moving flows stop on `fraud_suspected`.

use regex::Regex;

/// One flag and the compiled patterns that raise it.
#[derive(Debug, Clone)]
pub struct RiskRule {
    pub name: String,
    /// Why, in words staff understand (shown on the ticket).
    pub why: String,
    pub patterns: Vec<Regex>,
}

/// Every risk rule, in file order.
#[derive(Debug, Clone, Default)]
pub struct RiskRules {
    pub rules: Vec<RiskRule>,
}

impl RiskRules {
    /// The flags `matching` text raises, each once, in rule order.
    pub fn flags(&self, matching: &str) -> Vec<String> {
        self.rules
            .iter()
            .filter(|r| r.patterns.iter().any(|p| p.is_match(matching)))
            .map(|r| r.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::nlu::Nlu;
    use crate::text::normalize::normalize;

    #[test]
    fn the_fraud_patterns_of_the_issue_raise_the_flag() {
        let nlu = Nlu::for_tests();
        for text in [
            "他们让我把钱转到安全账户",
            "有人冒充公检法给我打电话",
            "对方让我转账五万",
            "客服叫我把验证码告诉对方",
            "我把验证码给他了",
            "网上刷单返利的那个人让我先垫钱",
            "警察说我涉嫌洗钱要资金核查",
            "自称是银行客服的人让我转钱",
        ] {
            let flags = nlu.risk.flags(&normalize(text).matching);
            assert_eq!(flags, vec!["fraud_suspected"], "{text}");
        }
    }

    #[test]
    fn ordinary_requests_raise_nothing() {
        let nlu = Nlu::for_tests();
        for text in [
            "我要给我儿子转账五千",
            "帮我查一下余额",
            "验证码收不到怎么办",
            "转账限额怎么调高",
            "我想买点理财",
        ] {
            assert!(
                nlu.risk.flags(&normalize(text).matching).is_empty(),
                "{text}"
            );
        }
    }
}
