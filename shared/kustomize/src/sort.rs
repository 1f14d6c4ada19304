//! Output order: kustomize's legacy kind order (the default), or the order resources were
//! read (`sortOptions.order: fifo`).

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::error::{Result, bail};
use crate::kustfile::SortOptions;
use crate::resource::{Gvk, ResId, ResMap};

/// kustomize's legacy order: these kinds first, in this order...
pub(crate) const ORDER_FIRST: [&str; 22] = [
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];
/// ...and these last.
pub(crate) const ORDER_LAST: [&str; 2] = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"];

/// Sorts `rm` as `sortOptions` asks; without options, in the legacy order.
pub fn sort(rm: &mut ResMap, options: Option<&SortOptions>) -> Result<()> {
    let (order, legacy) = match options {
        None => ("legacy", None),
        Some(o) => (o.order.as_str(), o.legacy_sort_options.as_ref()),
    };
    match order {
        "fifo" => {
            if legacy.is_some() {
                bail!("sortOptions.legacySortOptions is set but the selected sort order is 'fifo', not 'legacy'");
            }
            Ok(())
        }
        "legacy" => {
            let (first, last): (Vec<&str>, Vec<&str>) = match legacy {
                Some(l) => (
                    l.order_first.iter().map(String::as_str).collect(),
                    l.order_last.iter().map(String::as_str).collect(),
                ),
                None => (ORDER_FIRST.to_vec(), ORDER_LAST.to_vec()),
            };
            legacy_sort(rm, &first, &last);
            Ok(())
        }
        other => bail!("sortOptions.order must be one of [fifo, legacy], not '{other}'"),
    }
}

fn legacy_sort(rm: &mut ResMap, first: &[&str], last: &[&str]) {
    let mut rank: HashMap<&str, i64> = HashMap::new();
    let n = first.len() as i64;
    for (i, kind) in first.iter().enumerate() {
        rank.insert(kind, i as i64 - n);
    }
    for (i, kind) in last.iter().enumerate() {
        rank.insert(kind, i as i64 + 1);
    }
    let mut keyed: Vec<_> = std::mem::take(rm.resources_mut())
        .into_iter()
        .map(|r| (r.id(), r))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| compare(a, b, &rank));
    *rm.resources_mut() = keyed.into_iter().map(|(_, r)| r).collect();
}

fn compare(a: &ResId, b: &ResId, rank: &HashMap<&str, i64>) -> Ordering {
    if a.gvk != b.gvk {
        let (ra, rb) = (
            rank.get(a.gvk.kind.as_str()).unwrap_or(&0),
            rank.get(b.gvk.kind.as_str()).unwrap_or(&0),
        );
        if ra != rb {
            return ra.cmp(rb);
        }
        let (sa, sb) = (gvk_key(&a.gvk), gvk_key(&b.gvk));
        // kustomize puts a core-group Namespace after Namespaces of other groups.
        if a.gvk.kind == "Namespace" && b.gvk.kind == "Namespace" && (a.gvk.group.is_empty() || b.gvk.group.is_empty())
        {
            return sb.cmp(&sa);
        }
        return sa.cmp(&sb);
    }
    id_key(a).cmp(&id_key(b))
}

fn or<'a>(s: &'a str, missing: &'a str) -> &'a str {
    if s.is_empty() { missing } else { s }
}

fn gvk_key(gvk: &Gvk) -> String {
    format!(
        "{}_{}_{}",
        or(&gvk.group, "~G"),
        or(&gvk.version, "~V"),
        or(&gvk.kind, "~K")
    )
}

fn id_key(id: &ResId) -> String {
    format!("{}|{}|{}", id.gvk, or(&id.namespace, "~X"), or(&id.name, "~N"))
}
