//! Image garbage collection, as kubelet does it: when the image
//! filesystem's usage passes a high threshold, remove unused images, least
//! recently used first, until usage is back under a low threshold. Layers no
//! image uses (left by interrupted pulls) go on every run.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;
use std::time::Duration;

use crate::digest::Digest;
use crate::error::ImageError;
use crate::metadata::{ImageRecord, SnapshotKind};
use crate::store::{ImageStore, unix_now};

/// When to collect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcPolicy {
    /// Start collecting when the filesystem is this full (kubelet: 85).
    pub high_threshold_percent: u8,
    /// Stop once it is this full (kubelet: 80).
    pub low_threshold_percent: u8,
    /// Never remove an image used more recently than this (kubelet: 2 min).
    pub min_age: Duration,
}

impl Default for GcPolicy {
    fn default() -> Self {
        Self {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            min_age: Duration::from_secs(120),
        }
    }
}

/// A filesystem's size and free space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsCapacity {
    /// Total bytes.
    pub capacity: u64,
    /// Bytes free for unprivileged use.
    pub available: u64,
}

impl FsCapacity {
    /// Bytes in use.
    pub fn used(&self) -> u64 {
        self.capacity.saturating_sub(self.available)
    }

    /// Percent in use, rounded up.
    pub fn used_percent(&self) -> u64 {
        if self.capacity == 0 {
            return 0;
        }
        (self.used() * 100).div_ceil(self.capacity)
    }
}

/// The OS seam for filesystem capacity.
pub trait FsStats: Send + Sync + std::fmt::Debug {
    /// Capacity of the filesystem holding `path`.
    fn capacity(&self, path: &Path) -> io::Result<FsCapacity>;
}

/// Capacity from statvfs(2).
#[derive(Debug, Clone, Copy, Default)]
pub struct StatvfsStats;

impl FsStats for StatvfsStats {
    fn capacity(&self, path: &Path) -> io::Result<FsCapacity> {
        let st = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
        let block = st.fragment_size() as u64;
        Ok(FsCapacity {
            capacity: st.blocks() as u64 * block,
            available: st.blocks_available() as u64 * block,
        })
    }
}

/// What a collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Filesystem usage when the run started, in percent.
    pub used_percent_before: u64,
    /// Images removed.
    pub images_removed: Vec<Digest>,
    /// Layer snapshots removed (including ones no image used).
    pub layers_removed: usize,
}

impl ImageStore {
    /// Runs one collection. Images used by a container's root filesystem,
    /// pinned images, images in `in_use` and images used within the policy's
    /// minimum age are never removed.
    pub async fn garbage_collect(&self, in_use: &HashSet<Digest>) -> Result<GcReport, ImageError> {
        let inner = self.inner();
        let capacity = inner
            .config
            .fs_stats
            .capacity(&inner.root)
            .map_err(ImageError::io("statvfs", &inner.root))?;
        let mut in_use = in_use.clone();
        for snap in inner.snapshots.list()? {
            if snap.kind == SnapshotKind::Container {
                in_use.extend(snap.image);
            }
        }
        let layer_usage: HashMap<String, u64> = inner
            .snapshots
            .list()?
            .into_iter()
            .filter(|s| s.kind == SnapshotKind::Layer)
            .map(|s| (s.key, s.disk_usage))
            .collect();
        let victims = plan(
            &inner.images(),
            &in_use,
            &layer_usage,
            capacity,
            &inner.config.gc,
            unix_now(),
        );
        let mut report = GcReport {
            used_percent_before: capacity.used_percent(),
            ..GcReport::default()
        };
        for id in victims {
            match self.remove(&id.to_string()).await {
                Ok(image) => {
                    tracing::info!(image = %image.id, names = ?image.names, "garbage-collected image");
                    report.images_removed.push(image.id);
                }
                // Raced with a container starting, or already gone: skip it.
                Err(err) => tracing::debug!(image = %id, %err, "not collecting image"),
            }
        }
        let all_layers = layer_usage.keys().filter_map(|k| k.parse().ok()).collect();
        report.layers_removed = inner.remove_unused(&all_layers).await?.len();
        Ok(report)
    }
}

/// Picks the images to remove: none while usage is under the high threshold;
/// else unused, unpinned, old-enough images, least recently used first,
/// until the bytes their exclusive layers free bring usage to the low one.
fn plan(
    images: &[ImageRecord],
    in_use: &HashSet<Digest>,
    layer_usage: &HashMap<String, u64>,
    capacity: FsCapacity,
    policy: &GcPolicy,
    now: i64,
) -> Vec<Digest> {
    if capacity.used_percent() < u64::from(policy.high_threshold_percent) {
        return Vec::new();
    }
    let target = capacity.capacity * u64::from(policy.low_threshold_percent) / 100;
    let mut to_free = capacity.used().saturating_sub(target);
    let min_age = policy.min_age.as_secs() as i64;
    let mut candidates: Vec<&ImageRecord> = images
        .iter()
        .filter(|i| !i.pinned && !in_use.contains(&i.id) && now - i.last_used >= min_age)
        .collect();
    candidates.sort_by_key(|i| (i.last_used, i.created_at));

    let mut users: HashMap<&Digest, usize> = HashMap::new();
    for image in images {
        for layer in &image.layers {
            *users.entry(&layer.diff_id).or_default() += 1;
        }
    }
    let mut victims = Vec::new();
    for image in candidates {
        if to_free == 0 {
            break;
        }
        let mut freed = 0;
        for layer in &image.layers {
            let count = users.entry(&layer.diff_id).or_default();
            *count = count.saturating_sub(1);
            if *count == 0 {
                freed += layer_usage
                    .get(&layer.diff_id.to_string())
                    .copied()
                    .unwrap_or(0);
            }
        }
        victims.push(image.id.clone());
        to_free = to_free.saturating_sub(freed);
    }
    victims
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::LayerRef;

    fn image(name: &str, layers: &[&str], last_used: i64) -> ImageRecord {
        ImageRecord {
            id: Digest::sha256_of(name.as_bytes()),
            manifest_digest: Digest::sha256_of(b"m"),
            manifest_media_type: String::new(),
            names: vec![name.into()],
            layers: layers
                .iter()
                .map(|l| LayerRef {
                    blob_digest: Digest::sha256_of(l.as_bytes()),
                    blob_size: 0,
                    media_type: String::new(),
                    diff_id: Digest::sha256_of(l.as_bytes()),
                })
                .collect(),
            size: 0,
            user: String::new(),
            pinned: false,
            created_at: 0,
            last_used,
        }
    }

    fn usage(layers: &[(&str, u64)]) -> HashMap<String, u64> {
        layers
            .iter()
            .map(|(l, n)| (Digest::sha256_of(l.as_bytes()).to_string(), *n))
            .collect()
    }

    const GB: u64 = 1 << 30;

    #[test]
    fn nothing_is_collected_under_the_high_threshold() {
        let images = [image("a", &["l1"], 0)];
        let capacity = FsCapacity {
            capacity: 100 * GB,
            available: 16 * GB,
        };
        let policy = GcPolicy::default();
        assert!(
            plan(
                &images,
                &HashSet::new(),
                &usage(&[("l1", GB)]),
                capacity,
                &policy,
                1000
            )
            .is_empty()
        );
    }

    #[test]
    fn least_recently_used_images_go_first_until_the_low_threshold() {
        let images = [
            image("new", &["l3"], 900),
            image("old", &["l1"], 100),
            image("mid", &["l2"], 500),
        ];
        let layers = usage(&[("l1", 3 * GB), ("l2", 3 * GB), ("l3", 3 * GB)]);
        // 90% used; the low threshold (80%) needs 10 GB back: old and mid free 6, new 3 more.
        let capacity = FsCapacity {
            capacity: 100 * GB,
            available: 10 * GB,
        };
        let victims = plan(
            &images,
            &HashSet::new(),
            &layers,
            capacity,
            &GcPolicy::default(),
            10_000,
        );
        assert_eq!(
            victims,
            vec![
                images[1].id.clone(),
                images[2].id.clone(),
                images[0].id.clone()
            ]
        );
        // 86% used: 6 GB back is enough.
        let capacity = FsCapacity {
            capacity: 100 * GB,
            available: 14 * GB,
        };
        let victims = plan(
            &images,
            &HashSet::new(),
            &layers,
            capacity,
            &GcPolicy::default(),
            10_000,
        );
        assert_eq!(victims, vec![images[1].id.clone(), images[2].id.clone()]);
    }

    #[test]
    fn used_pinned_and_young_images_are_kept() {
        let mut pinned = image("pinned", &["l1"], 0);
        pinned.pinned = true;
        let images = [
            pinned,
            image("used", &["l2"], 0),
            image("young", &["l3"], 9_990),
            image("old", &["l4"], 0),
        ];
        let in_use = HashSet::from([images[1].id.clone()]);
        let layers = usage(&[("l1", GB), ("l2", GB), ("l3", GB), ("l4", GB)]);
        let capacity = FsCapacity {
            capacity: 10 * GB,
            available: 0,
        };
        let victims = plan(
            &images,
            &in_use,
            &layers,
            capacity,
            &GcPolicy::default(),
            10_000,
        );
        assert_eq!(victims, vec![images[3].id.clone()]);
    }

    #[test]
    fn a_shared_layer_frees_nothing_until_its_last_image_goes() {
        let images = [image("a", &["shared", "a"], 1), image("b", &["shared"], 2)];
        let layers = usage(&[("shared", 5 * GB), ("a", 0)]);
        let capacity = FsCapacity {
            capacity: 100 * GB,
            available: 10 * GB,
        };
        let victims = plan(
            &images,
            &HashSet::new(),
            &layers,
            capacity,
            &GcPolicy::default(),
            10_000,
        );
        assert_eq!(
            victims.len(),
            2,
            "removing only `a` frees nothing, so `b` goes too"
        );
    }
}
