//! Rendering of MetricTemplate queries and of a Canary's inline `query`: the `{{ variable }}`
//! substitutions of Flagger's Go templates, and nothing else.
//!
//! Flagger's templates reach their values as `{{ name }}` or `{{ .name }}` (spaces optional, and
//! Go's `{{-`/`-}}` trim markers accepted): `name`, `namespace`, `target`, `service`, `ingress`,
//! `interval`, and `variables.<key>` for the metric's `templateVariables`. Any other action (a
//! pipeline, a function call, `if`/`range`) is an error, as is an unknown variable: each names
//! what it could not render, where Flagger's Go templates render a missing key as `<no value>`.
//!
//! Values are inserted as they are, without quoting or escaping. They come from the Canary's
//! author, who could as well have written the whole query inline; but a MetricTemplate shared
//! across namespaces with a Secret's credentials gives every Canary author who references it
//! read access to that Prometheus, through the variables as through the template itself.

use std::collections::BTreeMap;

use super::MetricError;

/// The values a query template can reach.
#[derive(Clone, Copy, Debug)]
pub struct TemplateValues<'a> {
    /// The Canary's name.
    pub name: &'a str,
    /// The Canary's namespace.
    pub namespace: &'a str,
    /// The target Deployment's name (the canary workload).
    pub target: &'a str,
    /// The apex Service's name.
    pub service: &'a str,
    /// The Ingress of the `nginx` router; the target's name when the Canary has none (Flagger).
    pub ingress: &'a str,
    /// The metric's interval as a PromQL duration (`1m`, `1m30s`).
    pub interval: &'a str,
    /// The metric's `templateVariables`.
    pub variables: &'a BTreeMap<String, String>,
}

/// The variables a template can name, for error messages.
const KNOWN: &str = "name, namespace, target, service, ingress, interval, variables.<key>";

/// `query` with every `{{ variable }}` replaced by its value.
pub fn render(query: &str, values: &TemplateValues<'_>) -> Result<String, MetricError> {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(open) = rest.find("{{") {
        let text = &rest[..open];
        let after_open = &rest[open + 2..];
        let close = after_open.find("}}").ok_or_else(|| MetricError::TemplateSyntax {
            reason: format!("{{{{ at byte {} is never closed", query.len() - rest.len() + open),
        })?;
        let mut action = &after_open[..close];
        rest = &after_open[close + 2..];

        // Go's trim markers: "{{- " drops the whitespace before, " -}}" the whitespace after.
        let mut text = text;
        if let Some(trimmed) = action.strip_prefix("- ") {
            text = text.trim_end();
            action = trimmed;
        }
        if let Some(trimmed) = action.strip_suffix(" -") {
            rest = rest.trim_start();
            action = trimmed;
        }
        out.push_str(text);
        out.push_str(lookup(action.trim(), values)?);
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of the variable `action` names (`name`, `.name`, `variables.key`, `.variables.key`).
fn lookup<'a>(action: &str, values: &TemplateValues<'a>) -> Result<&'a str, MetricError> {
    let path = action.strip_prefix('.').unwrap_or(action);
    if path.is_empty() || !path.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
        return Err(MetricError::TemplateSyntax {
            reason: format!("{{{{{action}}}}} is not a variable; only {KNOWN} can be used"),
        });
    }
    let value =
        match path {
            "name" => values.name,
            "namespace" => values.namespace,
            "target" => values.target,
            "service" => values.service,
            "ingress" => values.ingress,
            "interval" => values.interval,
            _ => match path.strip_prefix("variables.") {
                Some(key) => values.variables.get(key).map(String::as_str).ok_or_else(|| {
                    MetricError::MissingTemplateVariable {
                        key: key.to_owned(),
                        defined: values.variables.keys().cloned().collect::<Vec<_>>().join(", "),
                    }
                })?,
                None => {
                    return Err(MetricError::UnknownTemplateVariable {
                        variable: path.to_owned(),
                        known: KNOWN,
                    });
                }
            },
        };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with<T>(variables: &[(&str, &str)], check: impl FnOnce(&TemplateValues<'_>) -> T) -> T {
        let variables: BTreeMap<String, String> = variables
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        check(&TemplateValues {
            name: "podinfo-canary",
            namespace: "shop",
            target: "podinfo",
            service: "podinfo-svc",
            ingress: "podinfo-ingress",
            interval: "1m",
            variables: &variables,
        })
    }

    #[test]
    fn every_variable_renders_with_or_without_dot_and_spaces() {
        let rendered = with(&[("route", "/api")], |values| {
            render(
                "{{ name }} {{.namespace}} {{ .target }} {{service}} {{ ingress }} [{{ interval }}] {{ variables.route }} {{.variables.route}}",
                values,
            )
        })
        .unwrap();
        assert_eq!(
            rendered,
            "podinfo-canary shop podinfo podinfo-svc podinfo-ingress [1m] /api /api"
        );
    }

    #[test]
    fn a_flagger_template_renders_to_promql() {
        let template = r#"100 - sum(rate(istio_requests_total{destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}",response_code!="404"}[{{ interval }}])) / sum(rate(istio_requests_total{destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}"}[{{ interval }}])) * 100"#;
        let rendered = with(&[], |values| render(template, values)).unwrap();
        assert_eq!(
            rendered,
            r#"100 - sum(rate(istio_requests_total{destination_workload_namespace="shop",destination_workload="podinfo",response_code!="404"}[1m])) / sum(rate(istio_requests_total{destination_workload_namespace="shop",destination_workload="podinfo"}[1m])) * 100"#
        );
    }

    #[test]
    fn text_without_actions_and_lone_braces_stay_as_they_are() {
        let query = r#"sum(rate(x{a="}}"}[5m]))"#;
        assert_eq!(with(&[], |values| render(query, values)).unwrap(), query);
    }

    #[test]
    fn trim_markers_remove_the_surrounding_whitespace() {
        let rendered = with(&[], |values| render("a  {{- .target -}}\n  b", values)).unwrap();
        assert_eq!(rendered, "apodinfob");
    }

    #[test]
    fn values_are_inserted_as_they_are() {
        let rendered = with(&[("selector", r#"code=~"5..""#)], |values| {
            render("x{ {{ variables.selector }} }", values)
        })
        .unwrap();
        assert_eq!(rendered, r#"x{ code=~"5.." }"#);
    }

    #[test]
    fn an_unknown_variable_is_named_in_the_error() {
        let err = with(&[], |values| render("up{job=\"{{ job }}\"}", values)).unwrap_err();
        assert!(matches!(&err, MetricError::UnknownTemplateVariable { variable, .. } if variable == "job"));
        assert!(err.to_string().contains("job"), "{err}");
        assert!(err.to_string().contains("variables.<key>"), "{err}");
    }

    #[test]
    fn a_missing_template_variable_lists_the_defined_ones() {
        let err = with(&[("a", "1"), ("b", "2")], |values| render("{{ variables.c }}", values)).unwrap_err();
        assert_eq!(err.to_string(), "templateVariables has no key \"c\" (defined: a, b)");
    }

    #[test]
    fn actions_other_than_variables_are_refused() {
        for template in [
            "{{ .name | printf \"%s\" }}",
            "{{ if .name }}x{{ end }}",
            "{{ }}",
            "{{ index .variables \"a\" }}",
        ] {
            let err = with(&[], |values| render(template, values)).unwrap_err();
            assert!(matches!(err, MetricError::TemplateSyntax { .. }), "{template}: {err}");
        }
    }

    #[test]
    fn an_unclosed_action_is_an_error() {
        let err = with(&[], |values| render("sum(x{a=\"{{ target \"})", values)).unwrap_err();
        assert!(err.to_string().contains("never closed"), "{err}");
    }
}
