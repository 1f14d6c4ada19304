//! Which Alerts an event goes to: a pure function of the Alert's spec, the event and (only when
//! an event source selects by labels) the involved object's labels. Compiled once per Alert
//! generation so that the regular expressions are not rebuilt per event.

use std::collections::BTreeMap;

use regex::Regex;

use eddy_api::notify::{AlertSpec, EventSeverity, EventSource};

use crate::event::Event;

/// An Alert's selection, with its regular expressions compiled.
#[derive(Clone, Debug)]
pub struct Selector {
    /// The Alert's namespace, the default namespace of its sources.
    namespace: String,
    severity: EventSeverity,
    sources: Vec<EventSource>,
    inclusions: Vec<Regex>,
    exclusions: Vec<Regex>,
}

/// An Alert's selection that cannot be used; the text is the Alert's Stalled message.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvalidSelector {
    /// A regular expression does not compile.
    #[error("{list} entry {pattern:?} is not a valid regular expression: {reason}")]
    Pattern {
        /// `inclusionList` or `exclusionList`.
        list: &'static str,
        /// The entry.
        pattern: String,
        /// What the regex engine said.
        reason: String,
    },
    /// `matchLabels` with a single name.
    #[error("eventSources entry {kind}/{name} sets matchLabels, which needs name '*'")]
    LabelsWithName {
        /// The entry's kind.
        kind: &'static str,
        /// The entry's name.
        name: String,
    },
    /// A source in another namespace while cross-namespace references are refused.
    #[error(
        "eventSources entry {kind}/{namespace}/{name} is in another namespace, and cross-namespace references are disabled"
    )]
    CrossNamespace {
        /// The entry's kind.
        kind: &'static str,
        /// The entry's namespace.
        namespace: String,
        /// The entry's name.
        name: String,
    },
}

/// Longest compiled regex accepted, so that a hostile pattern cannot use unbounded memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What a match needs to know besides the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The event is selected.
    Selected,
    /// Not selected.
    Rejected,
    /// Selected if the involved object carries these labels: the caller looks them up.
    NeedsLabels,
}

impl Selector {
    /// Compiles an Alert's spec. `cross_namespace` allows sources in other namespaces.
    pub fn compile(namespace: &str, spec: &AlertSpec, cross_namespace: bool) -> Result<Self, InvalidSelector> {
        for source in &spec.event_sources {
            if !source.match_labels.is_empty() && source.name != "*" {
                return Err(InvalidSelector::LabelsWithName {
                    kind: source.kind.as_str(),
                    name: source.name.clone(),
                });
            }
            if let Some(other) = source.namespace.as_deref().filter(|ns| *ns != namespace)
                && !cross_namespace
            {
                return Err(InvalidSelector::CrossNamespace {
                    kind: source.kind.as_str(),
                    namespace: other.to_owned(),
                    name: source.name.clone(),
                });
            }
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            severity: spec.event_severity,
            sources: spec.event_sources.clone(),
            inclusions: compile_list("inclusionList", &spec.inclusion_list)?,
            exclusions: compile_list("exclusionList", &spec.exclusion_list)?,
        })
    }

    /// Whether `event` is selected. `labels` are the involved object's labels when the caller
    /// has looked them up (after a [`Verdict::NeedsLabels`]), `None` before.
    pub fn select(&self, event: &Event, labels: Option<&BTreeMap<String, String>>) -> Verdict {
        if self.severity == EventSeverity::Error && event.severity != EventSeverity::Error {
            return Verdict::Rejected;
        }
        if !self.inclusions.is_empty() && !self.inclusions.iter().any(|re| re.is_match(&event.message)) {
            return Verdict::Rejected;
        }
        if self.exclusions.iter().any(|re| re.is_match(&event.message)) {
            return Verdict::Rejected;
        }
        let mut needs_labels = false;
        for source in &self.sources {
            if !self.source_names(source, event) {
                continue;
            }
            if source.match_labels.is_empty() {
                return Verdict::Selected;
            }
            match labels {
                Some(labels) if contains_all(labels, &source.match_labels) => return Verdict::Selected,
                Some(_) => {}
                None => needs_labels = true,
            }
        }
        if needs_labels {
            Verdict::NeedsLabels
        } else {
            Verdict::Rejected
        }
    }

    /// Whether `source` names the event's object, labels aside.
    fn source_names(&self, source: &EventSource, event: &Event) -> bool {
        let object = &event.object;
        let namespace = source.namespace.as_deref().unwrap_or(&self.namespace);
        let api_version = source
            .api_version
            .as_deref()
            .is_none_or(|wanted| wanted == object.api_version);
        source.kind.as_str() == object.kind
            && namespace == object.namespace
            && (source.name == "*" || source.name == object.name)
            && api_version
    }
}

fn compile_list(list: &'static str, patterns: &[String]) -> Result<Vec<Regex>, InvalidSelector> {
    patterns
        .iter()
        .map(|pattern| {
            regex::RegexBuilder::new(pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|err| InvalidSelector::Pattern {
                    list,
                    pattern: pattern.clone(),
                    reason: err.to_string(),
                })
        })
        .collect()
}

fn contains_all(labels: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(key, value)| labels.get(key) == Some(value))
}

#[cfg(test)]
mod tests {
    use eddy_api::meta::LocalObjectReference;
    use eddy_api::notify::{AlertOn, EventSourceKind};

    use super::*;
    use crate::event::InvolvedObject;

    fn source(kind: EventSourceKind, name: &str) -> EventSource {
        EventSource {
            api_version: None,
            kind,
            name: name.to_owned(),
            namespace: None,
            match_labels: BTreeMap::new(),
        }
    }

    fn spec(sources: Vec<EventSource>) -> AlertSpec {
        AlertSpec {
            provider_ref: LocalObjectReference { name: "chat".into() },
            event_severity: EventSeverity::Info,
            event_sources: sources,
            inclusion_list: vec![],
            exclusion_list: vec![],
            event_metadata: BTreeMap::new(),
            summary: None,
            alert_on: AlertOn::All,
            repeat_interval: None,
            suspend: false,
        }
    }

    fn event(kind: &str, namespace: &str, name: &str, severity: EventSeverity, message: &str) -> Event {
        Event {
            object: InvolvedObject {
                kind: kind.into(),
                namespace: namespace.into(),
                name: name.into(),
                uid: String::new(),
                api_version: "apply.eddy.dev/v1alpha1".into(),
                resource_version: String::new(),
            },
            severity,
            timestamp: "2026-12-03T10:00:00Z".into(),
            message: message.into(),
            reason: "ReconciliationSucceeded".into(),
            metadata: BTreeMap::new(),
            reporting_controller: "apply-controller".into(),
        }
    }

    fn selected(selector: &Selector, event: &Event) -> bool {
        selector.select(event, None) == Verdict::Selected
    }

    #[test]
    fn sources_match_kind_name_or_star_and_default_to_the_alerts_namespace() {
        let selector = Selector::compile(
            "shop",
            &spec(vec![
                source(EventSourceKind::Kustomization, "web"),
                source(EventSourceKind::GitRepository, "*"),
            ]),
            true,
        )
        .unwrap();
        let info = EventSeverity::Info;
        assert!(selected(&selector, &event("Kustomization", "shop", "web", info, "m")));
        assert!(!selected(&selector, &event("Kustomization", "shop", "api", info, "m")));
        assert!(!selected(&selector, &event("Kustomization", "other", "web", info, "m")));
        assert!(selected(
            &selector,
            &event("GitRepository", "shop", "anything", info, "m")
        ));
        assert!(!selected(
            &selector,
            &event("OCIRepository", "shop", "anything", info, "m")
        ));
    }

    #[test]
    fn error_severity_selects_only_errors_and_info_selects_all() {
        let mut alert = spec(vec![source(EventSourceKind::Kustomization, "*")]);
        let error = event("Kustomization", "shop", "web", EventSeverity::Error, "failed");
        let info = event("Kustomization", "shop", "web", EventSeverity::Info, "applied");
        let all = Selector::compile("shop", &alert, true).unwrap();
        assert!(selected(&all, &error) && selected(&all, &info));
        alert.event_severity = EventSeverity::Error;
        let errors = Selector::compile("shop", &alert, true).unwrap();
        assert!(selected(&errors, &error));
        assert!(!selected(&errors, &info));
    }

    #[test]
    fn inclusion_needs_one_match_and_exclusion_wins() {
        let mut alert = spec(vec![source(EventSourceKind::Kustomization, "*")]);
        alert.inclusion_list = vec![".*configured.*".into(), "^created".into()];
        alert.exclusion_list = vec!["ConfigMap/".into()];
        let selector = Selector::compile("shop", &alert, true).unwrap();
        let said = |message| {
            selected(
                &selector,
                &event("Kustomization", "shop", "web", EventSeverity::Info, message),
            )
        };
        assert!(said("Deployment/shop/web configured"));
        assert!(said("created Service/shop/web"));
        assert!(!said("Deployment/shop/web unchanged"));
        assert!(!said("ConfigMap/shop/web configured"));
    }

    #[test]
    fn match_labels_ask_for_the_objects_labels_then_decide() {
        let mut labelled = source(EventSourceKind::Kustomization, "*");
        labelled.match_labels = BTreeMap::from([("team".to_owned(), "shop".to_owned())]);
        let selector = Selector::compile("shop", &spec(vec![labelled]), true).unwrap();
        let web = event("Kustomization", "shop", "web", EventSeverity::Info, "m");
        assert_eq!(selector.select(&web, None), Verdict::NeedsLabels);
        let team = BTreeMap::from([("team".to_owned(), "shop".to_owned()), ("x".to_owned(), "y".to_owned())]);
        assert_eq!(selector.select(&web, Some(&team)), Verdict::Selected);
        let other = BTreeMap::from([("team".to_owned(), "ops".to_owned())]);
        assert_eq!(selector.select(&web, Some(&other)), Verdict::Rejected);
        // An object the selector cannot name needs no lookup.
        let elsewhere = event("Kustomization", "ops", "web", EventSeverity::Info, "m");
        assert_eq!(selector.select(&elsewhere, None), Verdict::Rejected);
    }

    #[test]
    fn api_version_narrows_to_one_group() {
        let mut flux_only = source(EventSourceKind::Kustomization, "*");
        flux_only.api_version = Some("kustomize.toolkit.fluxcd.io/v1".into());
        let selector = Selector::compile("shop", &spec(vec![flux_only]), true).unwrap();
        let eddy = event("Kustomization", "shop", "web", EventSeverity::Info, "m");
        assert!(!selected(&selector, &eddy));
        let mut flux = eddy.clone();
        flux.object.api_version = "kustomize.toolkit.fluxcd.io/v1".into();
        assert!(selected(&selector, &flux));
    }

    #[test]
    fn invalid_selections_are_refused_with_the_entry_named() {
        let mut bad_regex = spec(vec![source(EventSourceKind::Kustomization, "*")]);
        bad_regex.exclusion_list = vec!["(unclosed".into()];
        let err = Selector::compile("shop", &bad_regex, true).unwrap_err();
        assert!(err.to_string().contains("exclusionList entry \"(unclosed\""), "{err}");

        let mut named = source(EventSourceKind::Kustomization, "web");
        named.match_labels = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        let err = Selector::compile("shop", &spec(vec![named]), true).unwrap_err();
        assert!(err.to_string().contains("needs name '*'"), "{err}");

        let mut elsewhere = source(EventSourceKind::Kustomization, "web");
        elsewhere.namespace = Some("ops".into());
        let alert = spec(vec![elsewhere]);
        assert!(Selector::compile("shop", &alert, true).is_ok());
        let err = Selector::compile("shop", &alert, false).unwrap_err();
        assert!(err.to_string().contains("cross-namespace"), "{err}");
    }
}
