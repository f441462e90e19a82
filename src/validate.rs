//! `concierge validate` and start-up run the same checks: [`check_all`] loads every data
//! folder ([`Content`]), the ticket rules, the branch file, and the files that only other
//! layers understand (knowledge synonyms and golden questions, the speech corrector's
//! lexicon), and reports every problem as `file:line: message`, all at once.

use std::path::Path;

use crate::branch::rules::BranchRules;
use crate::config::Settings;
use crate::content::{ArticleFile, Content};
use crate::datafile::{line_of, read_data_file, DataError};
use crate::dialog::flow::ActionCatalog;
use crate::tickets::rules::Rules;

/// Everything the data files define, validated.
pub struct Checked {
    pub content: Content,
    pub rules: Rules,
    pub branch: BranchRules,
}

/// Loads and validates every data file the settings name (flows against `actions`).
pub fn check_all(
    settings: &Settings,
    actions: &dyn ActionCatalog,
) -> Result<Checked, Vec<DataError>> {
    let content = check_content(settings, actions);
    let rules = Rules::load(&settings.tickets.rules_file);
    let branch = BranchRules::load(&settings.branch.rules_file);
    match (content, rules, branch) {
        (Ok(content), Ok(rules), Ok(branch)) => Ok(Checked {
            content,
            rules,
            branch,
        }),
        (content, rules, branch) => {
            let mut errors = content.err().unwrap_or_default();
            errors.extend(rules.err().unwrap_or_default());
            errors.extend(branch.err().unwrap_or_default());
            Err(errors)
        }
    }
}

/// The data folders with every cross-layer check.
pub fn check_content(
    settings: &Settings,
    actions: &dyn ActionCatalog,
) -> Result<Content, Vec<DataError>> {
    let data = &settings.data;
    let loaded = Content::load(data, actions);
    let mut errors = Vec::new();
    // Golden questions are checked against the articles even when another file is broken.
    let articles = match &loaded {
        Ok(content) => content.articles.clone(),
        Err(_) => crate::content::load_articles(&data.knowledge_dir, &mut Vec::new()),
    };
    check_knowledge_documents(&data.knowledge_dir, &articles, &mut errors);
    // The operators' extra words for the speech corrector (optional file).
    let lexicon = data.dialogs_dir.join(crate::speech::correct::LEXICON_FILE);
    if lexicon.is_file() {
        if let Err(mut e) = crate::speech::correct::load_lexicon(&lexicon) {
            errors.append(&mut e);
        }
    }
    match loaded {
        Ok(content) if errors.is_empty() => Ok(content),
        Ok(_) => Err(errors),
        Err(mut e) => {
            e.append(&mut errors);
            Err(e)
        }
    }
}

/// [`check_content`], as one error listing every problem.
pub fn load_content(settings: &Settings) -> anyhow::Result<Content> {
    check_content(settings, &crate::actions::Registry::standard()).map_err(as_one_error)
}

pub use crate::datafile::as_one_error;

/// `synonyms.yaml` and `golden.yaml` beside the articles, when present: well-formed, and
/// every golden question expecting an article that exists with that audience.
fn check_knowledge_documents(dir: &Path, articles: &[ArticleFile], errors: &mut Vec<DataError>) {
    let synonyms = dir.join("synonyms.yaml");
    if let Some(text) = synonyms
        .is_file()
        .then(|| read_data_file(&synonyms, errors))
        .flatten()
    {
        if let Err(mut e) = crate::knowledge::text::Synonyms::parse(&synonyms, &text) {
            errors.append(&mut e);
        }
    }
    let golden = dir.join("golden.yaml");
    let Some(text) = golden
        .is_file()
        .then(|| read_data_file(&golden, errors))
        .flatten()
    else {
        return;
    };
    match crate::knowledge::golden::parse(&golden, &text) {
        Ok(list) => {
            for g in list {
                let audience = g.audience.as_deref().unwrap_or("customer");
                let found = articles.iter().find(|a| a.front.id == g.expect);
                let problem = match found {
                    None => Some(format!("`{}` is no article in {}", g.expect, dir.display())),
                    Some(a) if audience == "customer" && a.front.audience != "customer" => {
                        Some(format!(
                            "`{}` is a staff article; a customer question cannot find it",
                            g.expect
                        ))
                    }
                    _ => None,
                };
                if let Some(message) = problem {
                    errors.push(DataError {
                        file: golden.clone(),
                        line: line_of(&text, &format!("expect: {}", g.expect)),
                        message,
                    });
                }
            }
        }
        Err(mut e) => errors.append(&mut e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::parse_article;

    #[test]
    fn golden_questions_must_expect_existing_articles_of_their_audience() {
        let dir = std::env::temp_dir().join(format!("kb-golden-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut errors = Vec::new();
        let a = parse_article(
            &dir.join("s.md"),
            "---\nid: staff-only\ntitle: T\naudience: staff\n---\nbody\n",
            &mut errors,
        )
        .unwrap();
        std::fs::write(
            dir.join("golden.yaml"),
            "- question: 甲\n  expect: staff-only\n- question: 乙\n  expect: missing\n",
        )
        .unwrap();
        std::fs::write(dir.join("synonyms.yaml"), "- [挂失]\n").unwrap();
        check_knowledge_documents(&dir, &[a], &mut errors);
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text[0].contains("synonyms.yaml:1:"), "{text:?}");
        assert!(text[1].contains("golden.yaml:2:") && text[1].contains("staff article"));
        assert!(text[2].contains("golden.yaml:4:") && text[2].contains("missing"));
    }
}
