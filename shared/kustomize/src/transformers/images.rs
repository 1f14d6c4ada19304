//! `images`: rewrites container and init-container images (name, tag, digest) wherever a pod
//! template holds them.

use super::*;

/// One entry of `images`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Image {
    #[serde(default, deserialize_with = "scalar_string")]
    pub name: String,
    #[serde(default, deserialize_with = "scalar_string")]
    pub new_name: String,
    #[serde(default, deserialize_with = "scalar_string")]
    pub new_tag: String,
    #[serde(default, deserialize_with = "scalar_string")]
    pub digest: String,
    #[serde(default, deserialize_with = "scalar_string")]
    pub tag_suffix: String,
}

/// One entry of `images`, kind ImageTagTransformer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageTagTransformer {
    #[serde(default)]
    pub image_tag: Image,
    #[serde(default)]
    pub field_specs: Vec<FieldSpec>,
}

impl ImageTagTransformer {
    /// Rewrites matching images in every `containers` or `initContainers` list anywhere in an
    /// object, then in the fields the specs name (so a `tagSuffix` can apply twice, as in
    /// kustomize). CustomResourceDefinitions are left alone. `name` is matched as a regular
    /// expression followed by an optional tag and `@sha256:` digest.
    pub fn transform(&self, rm: &mut ResMap) -> Result<()> {
        let pattern = format!(
            "^{}(:[a-zA-Z0-9_.{{}}-]*)?(@sha256:[a-zA-Z0-9_.{{}}-]*)?$",
            self.image_tag.name
        );
        let matcher = Regex::new(&pattern)
            .map_err(|e| Error::new(format!("invalid image name '{}': {e}", self.image_tag.name)))?;
        let update = &mut |node: &mut Value| self.update_image(node, &matcher);
        for r in rm.iter_mut() {
            if r.kind() == "CustomResourceDefinition" {
                continue;
            }
            update_container_lists(&mut r.obj, update)?;
            for fs in &self.field_specs {
                fs.apply(&mut r.obj, update)?;
            }
        }
        Ok(())
    }

    fn update_image(&self, node: &mut Value, matcher: &Regex) -> Result<()> {
        if node.is_null() {
            return Ok(());
        }
        let current = scalar_text(node).ok_or_else(|| wrong_node_kind("ScalarNode", node))?;
        if !matcher.is_match(&current) {
            return Ok(());
        }
        let new = &self.image_tag;
        let (name, mut tag, mut digest) = split_image(&current);
        let mut image = if new.new_name.is_empty() {
            name.to_owned()
        } else {
            new.new_name.clone()
        };
        match (new.new_tag.is_empty(), new.digest.is_empty()) {
            (false, false) => {
                tag = new.new_tag.clone();
                digest = new.digest.clone();
            }
            (false, true) => {
                tag = new.new_tag.clone();
                digest.clear();
            }
            (true, false) => {
                tag.clear();
                digest = new.digest.clone();
            }
            (true, true) if !new.tag_suffix.is_empty() => {
                tag.push_str(&new.tag_suffix);
                digest.clear();
            }
            (true, true) => {}
        }
        if !tag.is_empty() {
            image = format!("{image}:{tag}");
        }
        if !digest.is_empty() {
            image = format!("{image}@{digest}");
        }
        *node = Value::String(image);
        Ok(())
    }
}

/// Splits `[host[:port]/]path[:tag][@digest]` into name, tag and digest.
pub(super) fn split_image(image: &str) -> (&str, String, String) {
    // A colon before the first slash belongs to the registry's port.
    let offset = match image.find('/') {
        Some(i) if i > 0 => i,
        _ => 0,
    };
    let rest = &image[offset..];
    let at = rest.find('@').map(|i| i + offset);
    let colon = rest.find(':').map(|i| i + offset);
    match (colon, at) {
        (None, None) => (image, String::new(), String::new()),
        (colon, Some(at)) if colon.is_none_or(|c| at < c) => (&image[..at], String::new(), image[at + 1..].to_owned()),
        (Some(colon), Some(at)) => (
            &image[..colon],
            image[colon + 1..at].to_owned(),
            image[at + 1..].to_owned(),
        ),
        (Some(colon), None) => (&image[..colon], image[colon + 1..].to_owned(), String::new()),
        (None, Some(_)) => unreachable!("handled by the digest-only arm"),
    }
}

/// kustomize's older image pass: the `image` of every element of any list named
/// `containers` or `initContainers`, at any depth.
fn update_container_lists(obj: &mut Object, update: &mut dyn FnMut(&mut Value) -> Result<()>) -> Result<()> {
    for (key, value) in obj.iter_mut() {
        update_nested_container_lists(value, update)?;
        if key != "containers" && key != "initContainers" {
            continue;
        }
        let Value::Array(items) = value else {
            continue;
        };
        for item in items {
            match item {
                Value::Object(container) => {
                    if let Some(image) = container.get_mut("image") {
                        update(image)?;
                    }
                }
                Value::Null => {}
                other => return Err(wrong_node_kind("MappingNode", other)),
            }
        }
    }
    Ok(())
}

fn update_nested_container_lists(value: &mut Value, update: &mut dyn FnMut(&mut Value) -> Result<()>) -> Result<()> {
    match value {
        Value::Object(map) => update_container_lists(map, update),
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|item| update_nested_container_lists(item, update)),
        _ => Ok(()),
    }
}
