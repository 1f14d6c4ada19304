//! Strategic merge patch, as kustomize v5 applies it: kyaml's merge2 walker run over the target
//! and the patch, with lists merged by the keys in the generated [`crate::schema`] table.
//!
//! kyaml merges YAML nodes in place and shares them between the two documents (an element the
//! patch adds is the patch's own node, and a list the target lacks becomes the patch's list, which
//! is then merged with itself). Several visible results depend on that sharing: the order of
//! merged list elements, a `$patch: replace` on a list element being dropped, a `$patch: replace`
//! at the top of a patch leaving the target as it was. To give the same output, both documents
//! are copied into one arena of nodes addressed by index, and the merge works on those nodes
//! with the same sharing.
//!
//! Where kyaml would produce a corrupted list (an element of a keyed list without its key, a
//! `$patch` directive left behind in a list the target does not have), this module reports an
//! error instead.

use serde_json::Value;

use crate::error::{Error, Result, bail};
use crate::resource::{Gvk, Object};
use crate::schema::{self, Field, MergeList, Type};

/// Deeper documents are refused rather than risk exhausting the stack.
const MAX_DEPTH: usize = 200;

const DIRECTIVE: &str = "$patch";

/// Applies a strategic-merge `patch` to `target`, an object of kind `gvk`. Returns `None`
/// when the patch deletes the whole object (`$patch: delete` at the top).
///
/// kustomize's quirks are kept: a `$patch: replace` at the top of the patch leaves the target
/// unchanged; the name, namespace and kind are not restored here (kustomize's caller does that).
pub fn apply(target: &Object, patch: &Object, gvk: &Gvk) -> Result<Option<Object>> {
    let mut merge = Merge { nodes: Vec::new() };
    let dest = merge.import_map(target, 0)?;
    let origin = merge.import_map(patch, 0)?;
    let schema = schema::kind_type(gvk).map(Schema::Object);
    let mut path = Vec::new();
    let result = merge
        .walk(Some(dest), Some(origin), schema, &mut path)
        .map_err(|e| Error::new(format!("strategic merge patch: {}", e.message)))?;
    match result {
        None => Ok(None),
        Some(id) if id == dest => match merge.export(id) {
            Value::Object(map) => Ok(Some(map)),
            _ => Ok(Some(Object::new())),
        },
        // The walk returned the patch's own node; kustomize keeps the target's node, untouched.
        Some(_) => Ok(Some(target.clone())),
    }
}

type NodeId = usize;

/// One YAML node. Children are shared by index, as kyaml shares `*yaml.Node` pointers.
#[derive(Clone, Debug)]
enum Node {
    /// `keep` marks a null the target had and the patch did not touch: kustomize keeps those.
    Null {
        keep: bool,
    },
    Scalar(Value),
    Map(Vec<(String, NodeId)>),
    Seq(Vec<NodeId>),
}

/// Where the walk is in the schema table.
#[derive(Clone, Copy, Debug)]
enum Schema {
    Object(&'static Type),
    /// A map whose values are objects of this type.
    MapOf(&'static Type),
    List(&'static MergeList),
}

impl Schema {
    fn field(self, name: &str) -> Option<Schema> {
        match self {
            Schema::Object(ty) => ty.field(name).map(|f| match f {
                Field::Object(t) => Schema::Object(t),
                Field::MapOf(t) => Schema::MapOf(t),
                Field::List(list) => Schema::List(list),
            }),
            Schema::MapOf(ty) => Some(Schema::Object(ty)),
            Schema::List(_) => None,
        }
    }

    fn items(self) -> Option<Schema> {
        match self {
            Schema::List(list) => list.items.map(Schema::Object),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Directive {
    Merge,
    Replace,
    Delete,
    /// The patch node is not a map or list, so it cannot carry a directive.
    None,
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Map,
    Seq,
    Scalar,
}

struct Merge {
    nodes: Vec<Node>,
}

fn at(path: &[String]) -> String {
    if path.is_empty() {
        "the object".to_owned()
    } else {
        path.concat()
    }
}

fn err(path: &[String], message: impl std::fmt::Display) -> Error {
    Error::new(format!("{}: {message}", at(path)))
}

/// The text of a scalar as YAML would hold it, which is what kyaml compares.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

/// A value kyaml writes from text (a filled-in merge key): typed the way YAML would read it.
fn scalar_from_text(text: &str) -> Value {
    if let Ok(n) = text.parse::<i64>() {
        return Value::from(n);
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(text.to_owned()),
    }
}

impl Merge {
    fn add(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn import_map(&mut self, map: &Object, depth: usize) -> Result<NodeId> {
        let mut fields = Vec::with_capacity(map.len());
        for (k, v) in map {
            let id = self.import(v, depth + 1)?;
            fields.push((k.clone(), id));
        }
        Ok(self.add(Node::Map(fields)))
    }

    fn import(&mut self, value: &Value, depth: usize) -> Result<NodeId> {
        if depth > MAX_DEPTH {
            bail!("document is nested more than {MAX_DEPTH} levels deep");
        }
        let node = match value {
            Value::Null => Node::Null { keep: false },
            Value::Object(map) => return self.import_map(map, depth),
            Value::Array(items) => {
                let mut ids = Vec::with_capacity(items.len());
                for item in items {
                    ids.push(self.import(item, depth + 1)?);
                }
                Node::Seq(ids)
            }
            scalar => Node::Scalar(scalar.clone()),
        };
        Ok(self.add(node))
    }

    fn export(&self, id: NodeId) -> Value {
        match &self.nodes[id] {
            Node::Null { .. } => Value::Null,
            Node::Scalar(v) => v.clone(),
            Node::Map(fields) => {
                let mut map = Object::new();
                for (k, v) in fields {
                    map.entry(k.clone()).or_insert_with(|| self.export(*v));
                }
                Value::Object(map)
            }
            Node::Seq(items) => Value::Array(items.iter().map(|i| self.export(*i)).collect()),
        }
    }

    fn is_null(&self, id: Option<NodeId>) -> bool {
        id.is_none_or(|i| matches!(self.nodes[i], Node::Null { .. }))
    }

    fn is_empty_map(&self, id: NodeId) -> bool {
        matches!(&self.nodes[id], Node::Map(f) if f.is_empty())
    }

    /// The node's text as kyaml's `yaml.Node.Value`: empty for maps and lists.
    fn text(&self, id: NodeId) -> String {
        match &self.nodes[id] {
            Node::Scalar(v) => scalar_text(v),
            Node::Null { .. } => "null".to_owned(),
            Node::Map(_) | Node::Seq(_) => String::new(),
        }
    }

    /// kyaml's `GetValue`: empty for missing and null nodes.
    fn value_text(&self, id: Option<NodeId>) -> String {
        match id {
            Some(i) if !self.is_null(Some(i)) => self.text(i),
            _ => String::new(),
        }
    }

    fn shape(&self, id: NodeId) -> Option<Shape> {
        match &self.nodes[id] {
            Node::Null { .. } => None,
            Node::Scalar(_) => Some(Shape::Scalar),
            Node::Map(_) => Some(Shape::Map),
            Node::Seq(_) => Some(Shape::Seq),
        }
    }

    fn field(&self, map: NodeId, name: &str) -> Option<NodeId> {
        match &self.nodes[map] {
            Node::Map(fields) => fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v),
            _ => None,
        }
    }

    fn items(&self, id: NodeId) -> Vec<NodeId> {
        match &self.nodes[id] {
            Node::Seq(items) => items.clone(),
            _ => Vec::new(),
        }
    }

    fn set_items(&mut self, id: NodeId, items: Vec<NodeId>) {
        self.nodes[id] = Node::Seq(items);
    }

    fn remove_field(&mut self, map: NodeId, name: &str) {
        if let Node::Map(fields) = &mut self.nodes[map]
            && let Some(i) = fields.iter().position(|(k, _)| k == name)
        {
            fields.remove(i);
        }
    }

    /// Sets a field the way kyaml's `FieldSetter` does: a missing or plain null value removes
    /// the field, an existing field's node takes the new content, a new field goes at the end.
    fn set_field(&mut self, map: NodeId, name: &str, value: Option<NodeId>) {
        let Some(value) = value.filter(|v| !matches!(self.nodes[*v], Node::Null { keep: false })) else {
            self.remove_field(map, name);
            return;
        };
        match self.field(map, name) {
            Some(existing) => {
                if existing != value {
                    self.nodes[existing] = self.nodes[value].clone();
                }
            }
            None => {
                if let Node::Map(fields) = &mut self.nodes[map] {
                    fields.push((name.to_owned(), value));
                }
            }
        }
    }

    /// The schema kyaml finds from a node's own `apiVersion` and `kind`, used where the table
    /// has nothing (custom resources embedding built-in objects).
    fn schema_from_kind(&self, id: Option<NodeId>) -> Option<Schema> {
        let id = id?;
        let text = |name: &str| {
            self.field(id, name)
                .map(|v| self.value_text(Some(v)))
                .unwrap_or_default()
        };
        let (api_version, kind) = (text("apiVersion"), text("kind"));
        if api_version.is_empty() || kind.is_empty() {
            return None;
        }
        schema::kind_type(&Gvk::from_api_version(&api_version, &kind)).map(Schema::Object)
    }

    fn walk(
        &mut self,
        dest: Option<NodeId>,
        origin: Option<NodeId>,
        schema: Option<Schema>,
        path: &mut Vec<String>,
    ) -> Result<Option<NodeId>> {
        if path.len() > MAX_DEPTH {
            return Err(err(path, format!("nested more than {MAX_DEPTH} levels deep")));
        }
        let schema = schema
            .or_else(|| self.schema_from_kind(dest))
            .or_else(|| self.schema_from_kind(origin));
        let shapes = [dest, origin].map(|s| s.and_then(|i| self.shape(i)));
        let Some(shape) = shapes.into_iter().flatten().next() else {
            return self.walk_map(dest, origin, schema, path);
        };
        if let [Some(d), Some(o)] = shapes
            && d != o
        {
            let name = |s: Shape| match s {
                Shape::Map => "a map",
                Shape::Seq => "a list",
                Shape::Scalar => "a scalar",
            };
            return Err(err(
                path,
                format!("cannot merge {} in the patch into {} in the target", name(o), name(d)),
            ));
        }
        match (shape, schema) {
            (Shape::Map, _) => self.walk_map(dest, origin, schema, path),
            (Shape::Seq, Some(Schema::List(list))) => self.walk_merge_list(dest, origin, list, path),
            (Shape::Seq | Shape::Scalar, _) => Ok(origin.or(dest)),
        }
    }

    fn walk_map(
        &mut self,
        dest: Option<NodeId>,
        origin: Option<NodeId>,
        schema: Option<Schema>,
        path: &mut Vec<String>,
    ) -> Result<Option<NodeId>> {
        let Some(dest) = self.visit_map(dest, origin, path)? else {
            return Ok(None);
        };
        let mut names: Vec<String> = Vec::new();
        for source in [Some(dest), origin].into_iter().flatten() {
            if let Node::Map(fields) = &self.nodes[source] {
                names.extend(fields.iter().map(|(k, _)| k.clone()));
            }
        }
        names.sort();
        names.dedup();
        for name in names {
            let field_schema = schema.and_then(|s| s.field(&name));
            let d = self.field(dest, &name);
            let o = origin.and_then(|o| self.field(o, &name));
            path.push(if path.is_empty() {
                name.clone()
            } else {
                format!(".{name}")
            });
            let value = self.walk(d, o, field_schema, path);
            path.pop();
            let value = value?;
            self.set_field(dest, &name, value);
        }
        Ok(Some(dest))
    }

    /// Decides which node a map becomes: the target's (merged into), the patch's (added or
    /// replacing), or none (deleted).
    fn visit_map(&mut self, dest: Option<NodeId>, origin: Option<NodeId>, path: &[String]) -> Result<Option<NodeId>> {
        if self.is_null(dest) {
            if self.map_directive(origin, path)? == Directive::Delete {
                return Ok(None);
            }
            if origin.is_none() && dest.is_some() {
                return Ok(Some(self.add(Node::Null { keep: true })));
            }
            return Ok(origin);
        }
        if origin.is_some_and(|o| matches!(self.nodes[o], Node::Null { .. })) {
            return Ok(None);
        }
        Ok(match self.map_directive(origin, path)? {
            Directive::Delete => None,
            Directive::Replace => origin,
            Directive::Merge | Directive::None => dest,
        })
    }

    /// Reads and removes a map's `$patch` directive.
    fn map_directive(&mut self, origin: Option<NodeId>, path: &[String]) -> Result<Directive> {
        let Some(origin) = origin else {
            return Ok(Directive::Merge);
        };
        if !matches!(self.nodes[origin], Node::Map(_)) {
            return Ok(Directive::None);
        }
        let Some(value) = self.field(origin, DIRECTIVE) else {
            return Ok(Directive::Merge);
        };
        let directive = self.parse_directive(value, path)?;
        self.remove_field(origin, DIRECTIVE);
        Ok(directive)
    }

    fn parse_directive(&self, value: NodeId, path: &[String]) -> Result<Directive> {
        match self.text(value).as_str() {
            "merge" => Ok(Directive::Merge),
            "replace" => Ok(Directive::Replace),
            "delete" => Ok(Directive::Delete),
            other => Err(err(
                path,
                format!("unknown patch strategy {other:?} in `$patch` (expected merge, replace or delete)"),
            )),
        }
    }

    /// Reads and removes a list's directive: an element that holds nothing but `$patch`.
    fn list_directive(&mut self, origin: Option<NodeId>, path: &[String]) -> Result<Directive> {
        let Some(origin) = origin else {
            return Ok(Directive::Merge);
        };
        let carrier = self
            .items(origin)
            .into_iter()
            .find(|item| self.field(*item, DIRECTIVE).is_some());
        let Some(carrier) = carrier else {
            return Ok(Directive::Merge);
        };
        match &self.nodes[carrier] {
            Node::Map(fields) if fields.len() == 1 => {}
            _ => return Ok(Directive::Merge),
        }
        let value = self.field(carrier, DIRECTIVE).unwrap_or(carrier);
        let directive = self.parse_directive(value, path)?;
        let text = self.text(value);
        self.set_element(origin, None, &[DIRECTIVE.to_owned()], &[text], path)?;
        Ok(directive)
    }

    fn walk_merge_list(
        &mut self,
        dest: Option<NodeId>,
        origin: Option<NodeId>,
        list: &'static MergeList,
        path: &mut Vec<String>,
    ) -> Result<Option<NodeId>> {
        let dest = if self.is_null(dest) {
            origin
        } else if origin.is_some_and(|o| matches!(self.nodes[o], Node::Null { .. })) {
            None
        } else {
            match self.list_directive(origin, path)? {
                Directive::Delete => None,
                Directive::Replace => origin,
                Directive::Merge | Directive::None => dest,
            }
        };
        let Some(dest) = dest else {
            return Ok(None);
        };
        let keys: Vec<String> = list.keys.iter().map(|k| (*k).to_owned()).collect();
        let element_schema = Schema::List(list).items();
        // kustomize merges with patch elements first: the patch's list is read before the target's.
        let sources = [origin, Some(dest)];
        if keys.is_empty() {
            let mut values: Vec<Vec<String>> = Vec::new();
            for source in sources.into_iter().flatten() {
                for item in self.items(source) {
                    let text = vec![self.text(item)];
                    if !values.contains(&text) {
                        values.push(text);
                    }
                }
            }
            return self.merge_elements(values, &[String::new()], dest, origin, element_schema, path);
        }
        for source in sources.into_iter().flatten() {
            self.check_keyed_elements(source, &keys, path)?;
        }
        let mut values: Vec<Vec<String>> = Vec::new();
        for source in sources.into_iter().flatten() {
            for item in self.items(source) {
                let key_values = self.key_values(item, &keys);
                if !values.contains(&key_values) {
                    values.push(key_values);
                }
            }
        }
        self.merge_elements(values, &keys, dest, origin, element_schema, path)
    }

    /// kyaml corrupts a keyed list holding an element without any of its keys; refuse instead.
    fn check_keyed_elements(&self, list: NodeId, keys: &[String], path: &[String]) -> Result<()> {
        for (i, item) in self.items(list).into_iter().enumerate() {
            if !matches!(self.nodes[item], Node::Map(_)) {
                return Err(err(
                    path,
                    format!("list element {i} is not a map; this list merges by {}", keys.join(", ")),
                ));
            }
            if self.key_values(item, keys).iter().all(String::is_empty) {
                if self.field(item, DIRECTIVE).is_some() {
                    return Err(err(
                        path,
                        "a `$patch` directive in a list the target does not have; kustomize would leave it in the output",
                    ));
                }
                return Err(err(
                    path,
                    format!("list element {i} has no merge key `{}`", keys.join("`, `")),
                ));
            }
        }
        Ok(())
    }

    /// An element's values for the merge keys; empty text for a missing or empty one.
    fn key_values(&self, item: NodeId, keys: &[String]) -> Vec<String> {
        keys.iter()
            .map(|key| match self.field(item, key) {
                Some(v) if !self.is_null(Some(v)) && !self.is_empty_container(v) => self.text(v),
                _ => String::new(),
            })
            .collect()
    }

    fn is_empty_container(&self, id: NodeId) -> bool {
        match &self.nodes[id] {
            Node::Map(f) => f.is_empty(),
            Node::Seq(s) => s.is_empty(),
            _ => false,
        }
    }

    /// Merges a keyed (or, with the key `""`, scalar) list element by element. Each distinct
    /// key is walked once, the results collected in order, then the target's elements are put
    /// back over them (they are the merged nodes wherever the merge happened in place).
    fn merge_elements(
        &mut self,
        mut values: Vec<Vec<String>>,
        keys: &[String],
        dest: NodeId,
        origin: Option<NodeId>,
        element_schema: Option<Schema>,
        path: &mut Vec<String>,
    ) -> Result<Option<NodeId>> {
        let collected = self.add(Node::Seq(Vec::new()));
        if keys.len() > 1 {
            unify_partial_keys(&mut values);
        }
        let mut valid_keys = keys.to_vec();
        for index in 0..values.len() {
            let element_values = values[index].clone();
            if element_values.is_empty() {
                continue;
            }
            let (vk, vv) = present_keys(&values, &element_values, keys);
            valid_keys = vk;
            let (match_keys, match_values) = present_keys(std::slice::from_ref(&vv), &vv, &valid_keys);
            let d = self.find_element(dest, &match_keys, &match_values);
            let o = origin.and_then(|o| self.find_element(o, &match_keys, &match_values));
            path.push(element_label(&valid_keys, &vv));
            let merged = self.walk(d, o, element_schema, path);
            let merged = match merged {
                Ok(m) => m,
                Err(e) => {
                    path.pop();
                    return Err(e);
                }
            };
            let result = self.place_element(merged, collected, dest, &valid_keys, &vv, path);
            path.pop();
            result?;
        }
        if values.is_empty() {
            return Ok(Some(dest));
        }
        self.put_back(collected, dest, &valid_keys, path)?;
        Ok(Some(collected))
    }

    fn place_element(
        &mut self,
        merged: Option<NodeId>,
        collected: NodeId,
        dest: NodeId,
        keys: &[String],
        values: &[String],
        path: &[String],
    ) -> Result<()> {
        let Some(merged) = merged.filter(|m| !self.is_null(Some(*m)) && !self.is_empty_map(*m)) else {
            return self.set_element(dest, None, keys, values, path);
        };
        if matches!(self.nodes[merged], Node::Map(_)) {
            for (key, value) in keys.iter().zip(values) {
                if self.field(merged, key).is_none() && !value.is_empty() {
                    let id = self.add(Node::Scalar(scalar_from_text(value)));
                    self.set_field(merged, key, Some(id));
                }
            }
        }
        self.set_element(collected, Some(merged), keys, values, path)
    }

    /// Puts the target's elements over the collected ones: in place when one matches, at the
    /// end otherwise. For lists with several keys kyaml removes the match first, which moves
    /// the target's elements after the patch's new ones.
    fn put_back(&mut self, collected: NodeId, dest: NodeId, keys: &[String], path: &[String]) -> Result<()> {
        let scalar_list = keys.first().is_none_or(String::is_empty);
        for item in self.items(dest) {
            if scalar_list {
                let text = self.text(item);
                self.set_element(collected, Some(item), &[String::new()], &[text], path)?;
                continue;
            }
            let mut found = Vec::new();
            for key in keys {
                match self.field(item, key) {
                    Some(v) => found.push(self.text(v)),
                    None => {
                        let mut items = self.items(collected);
                        items.push(item);
                        self.set_items(collected, items);
                    }
                }
            }
            if keys.len() > 1 {
                self.set_element(collected, None, keys, &found, path)?;
            }
            self.set_element(collected, Some(item), keys, &found, path)?;
        }
        Ok(())
    }

    /// The first map element whose key fields have exactly these texts, or for scalar lists
    /// (key `""`) the first element with this text.
    fn find_element(&self, list: NodeId, keys: &[String], values: &[String]) -> Option<NodeId> {
        let items = match &self.nodes[list] {
            Node::Seq(items) => items,
            _ => return None,
        };
        if keys.first().is_none_or(String::is_empty) {
            let wanted = values.first().map_or("", String::as_str);
            return items.iter().copied().find(|i| self.text(*i) == wanted);
        }
        items.iter().copied().find(|item| {
            matches!(self.nodes[*item], Node::Map(_))
                && keys
                    .iter()
                    .zip(values)
                    .all(|(k, v)| self.field(*item, k).is_some_and(|f| self.text(f) == *v))
        })
    }

    /// Whether `item` matches a key field for kyaml's element setter: an empty wanted text only
    /// asks for the field to exist.
    fn matches_key(&self, item: NodeId, key: &str, wanted: &str, path: &[String]) -> Result<bool> {
        if self.is_null(Some(item)) {
            return Ok(false);
        }
        if key.is_empty() {
            if !matches!(self.nodes[item], Node::Scalar(_)) {
                return Err(err(path, "a list of scalars holds a map or a list"));
            }
            return Ok(self.value_text(Some(item)) == wanted);
        }
        if !matches!(self.nodes[item], Node::Map(_)) {
            return Err(err(
                path,
                format!("list element is not a map; the list merges by `{key}`"),
            ));
        }
        Ok(self
            .field(item, key)
            .is_some_and(|f| wanted.is_empty() || self.text(f) == wanted))
    }

    /// kyaml's `ElementSetter`: drops null and empty-map elements, replaces every element
    /// matching the keys with `element` (or removes them when `element` is `None`), and appends
    /// `element` when nothing matched.
    fn set_element(
        &mut self,
        list: NodeId,
        element: Option<NodeId>,
        keys: &[String],
        values: &[String],
        path: &[String],
    ) -> Result<()> {
        let keys: Vec<String> = if keys.is_empty() {
            vec![String::new()]
        } else {
            keys.to_vec()
        };
        let mapping_setter = !keys[0].is_empty() && values.first().is_some_and(|v| !v.is_empty());
        let mut kept = Vec::new();
        let mut matched = false;
        for item in self.items(list) {
            if self.is_null(Some(item)) || self.is_empty_map(item) {
                continue;
            }
            if mapping_setter && !matches!(self.nodes[item], Node::Map(_)) {
                kept.push(item);
                continue;
            }
            // Keys beyond the given values reuse the last comparison, as kyaml's loop does.
            let mut hit = false;
            for (j, key) in keys.iter().enumerate() {
                if let Some(value) = values.get(j) {
                    hit = self.matches_key(item, key, value, path)?;
                }
                if !hit {
                    break;
                }
            }
            if !hit {
                if !values.is_empty() {
                    kept.push(item);
                }
                continue;
            }
            matched = true;
            if let Some(element) = element {
                kept.push(element);
            }
        }
        if let Some(element) = element.filter(|e| !self.is_null(Some(*e)))
            && !matched
        {
            kept.push(element);
        }
        self.set_items(list, kept);
        Ok(())
    }
}

/// For lists with several keys (ports: port and protocol), treats two elements as the same when
/// their keys agree wherever both are set, e.g. a port without a protocol and the same port
/// with `TCP`.
fn unify_partial_keys(values: &mut [Vec<String>]) {
    for i in 0..values.len() {
        let first = values[i].clone();
        for j in 0..values.len() {
            if let Some(joined) = join_partial(&first, &values[j]) {
                values[i] = joined.clone();
                values[j] = joined;
            }
        }
    }
}

fn join_partial(a: &[String], b: &[String]) -> Option<Vec<String>> {
    if a.len() != b.len() {
        return None;
    }
    let mut common = false;
    let mut joined = Vec::with_capacity(a.len());
    for (x, y) in a.iter().zip(b) {
        if x == y {
            common = true;
            joined.push(x.clone());
        } else if !x.is_empty() && !y.is_empty() {
            return None;
        } else {
            joined.push(if x.is_empty() { y.clone() } else { x.clone() });
        }
    }
    common.then_some(joined)
}

/// Narrows the keys to those some element sets (all of them when none is set), with this
/// element's values for them.
fn present_keys(all: &[Vec<String>], values: &[String], keys: &[String]) -> (Vec<String>, Vec<String>) {
    let present: Vec<bool> = (0..keys.len())
        .map(|i| all.iter().any(|v| v.get(i).is_some_and(|s| !s.is_empty())))
        .collect();
    if !present.contains(&true) {
        return (keys.to_vec(), values.to_vec());
    }
    let pick = |list: &[String]| -> Vec<String> {
        list.iter()
            .zip(&present)
            .filter(|(_, p)| **p)
            .map(|(v, _)| v.clone())
            .collect()
    };
    (pick(keys), pick(values))
}

fn element_label(keys: &[String], values: &[String]) -> String {
    let parts: Vec<String> = keys
        .iter()
        .zip(values)
        .map(|(k, v)| if k.is_empty() { v.clone() } else { format!("{k}={v}") })
        .collect();
    format!("[{}]", parts.join(","))
}

#[cfg(test)]
mod tests;
