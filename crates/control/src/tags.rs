//! CreateTags, DeleteTags and DescribeTags on EC2's resources. The rules of tags are the
//! engine's ([`engine::tags`], re-exported here); what is EC2's own is the primary network
//! interface, whose tags live in its instance's record.

pub use engine::tags::{
    tags_from_specifications, tags_of_created, TagDescription, TagInput, TagSpecification,
};

use engine::tags;

use crate::describe::{Page, Query};
use crate::instances::Instance;
use crate::vpc::network_interfaces::NetworkInterface;
use crate::{Control, Error, Resource, Result, State, Tables, Tags, Txn};

/// Applies `change` to the tags of the resource `id`, whatever its kind.
fn update_tags(txn: &mut Txn, id: &str, change: &dyn Fn(&mut Tags)) -> Result<()> {
    let names_interface = txn.state().registry().kind_of_id(id) == Some(NetworkInterface::KIND);
    if names_interface {
        if let Some(mut instance) = primary_interface_owner(txn.state(), id).cloned() {
            change(&mut instance.network_tags);
            tags::check_count(&instance.network_tags)?;
            return Ok(txn.put(instance)?);
        }
    }
    Ok(tags::update(txn, id, change)?)
}

/// The live instance whose primary interface is `interface_id`.
fn primary_interface_owner<'a>(state: &'a State, interface_id: &str) -> Option<&'a Instance> {
    state.instances().values().find(|i| {
        i.live_network()
            .is_some_and(|n| n.interface_id == interface_id)
    })
}

impl Control {
    pub fn create_tags(
        &self,
        resources: &[String],
        inputs: &[TagInput],
        dry_run: bool,
    ) -> Result<()> {
        self.change_tags(resources, dry_run, &tags::creating(resources, inputs)?)
    }

    /// Without tags, removes every tag; a tag with a value removes the key only when the value matches.
    pub fn delete_tags(
        &self,
        resources: &[String],
        inputs: &[TagInput],
        dry_run: bool,
    ) -> Result<()> {
        self.change_tags(resources, dry_run, &tags::deleting(resources, inputs)?)
    }

    /// Sets (or, with `None`, removes) a reserved `aws:` tag that a service puts on what it
    /// manages (Auto Scaling's `aws:autoscaling:groupName`), which no request may.
    pub fn set_service_tag(&self, id: &str, key: &str, value: Option<&str>) -> Result<()> {
        let change = |tags: &mut Tags| match value {
            Some(value) => {
                tags.insert(key.to_owned(), value.to_owned());
            }
            None => {
                tags.remove(key);
            }
        };
        self.change_tags(&[id.to_owned()], false, &change)
    }

    /// Applies `change` to the tags of every resource, after checking that every one exists,
    /// so a bad ID changes nothing.
    fn change_tags(
        &self,
        resources: &[String],
        dry_run: bool,
        change: &dyn Fn(&mut Tags),
    ) -> Result<()> {
        self.mutate(|txn| {
            for id in resources {
                update_tags(txn, id, &|_| ())?;
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            for id in resources {
                update_tags(txn, id, change)?;
            }
            Ok(())
        })
    }

    pub fn describe_tags(&self, query: &Query) -> Result<Page<TagDescription>> {
        let state = self.read();
        let primary_interfaces = state
            .instances()
            .values()
            .filter_map(|instance| Some((instance.live_network()?, &instance.network_tags)))
            .flat_map(|(network, tags)| {
                tags.iter().map(|(key, value)| {
                    let id = network.interface_id.as_str();
                    (id, NetworkInterface::KIND, key.as_str(), value.as_str())
                })
            });
        Ok(tags::describe_tags(
            &state,
            self.config(),
            query,
            primary_interfaces,
        )?)
    }
}
