//! Kafka 4 group messages the `kafka-protocol` crate lacks, written from Kafka's own message
//! definitions (`clients/src/main/resources/common/message/*.json`, shipped in the
//! `kafka-clients` jar): DescribeShareGroupOffsets v0–v1 (v1 adds the per-partition lag,
//! KIP-1226, Kafka 4.2) and StreamsGroupDescribe v0–v1 (KIP-1071). Every version of both is
//! flexible (compact strings and arrays, tagged fields). They implement the crate's message
//! traits, so the connection sends them like any other request.
//!
//! Only what lagwatch reads is kept from an answer; the rest is decoded to be skipped, so an
//! answer is checked whole. A malformed answer is an error, never a panic: every read is
//! bounds-checked and no length is trusted beyond the bytes left.

use bytes::{Buf, BufMut, Bytes};
use kafka_protocol::protocol::buf::{ByteBuf, ByteBufMut};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Message, Request as ProtocolRequest, VersionRange,
};

/// API keys, from the definitions.
const DESCRIBE_SHARE_GROUP_OFFSETS_KEY: i16 = 90;
const STREAMS_GROUP_DESCRIBE_KEY: i16 = 89;

/// Why an answer does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(String);

type Wire<T> = Result<T, WireError>;

/// A bounds-checked reader of the flexible-version encoding.
struct Reader {
    buf: Bytes,
}

impl Reader {
    fn need(&self, n: usize, what: &str) -> Wire<()> {
        if self.buf.remaining() < n {
            return Err(WireError(format!(
                "{what}: {n} bytes needed, {} left",
                self.buf.remaining()
            )));
        }
        Ok(())
    }
    fn i8(&mut self) -> Wire<i8> {
        self.need(1, "int8")?;
        Ok(self.buf.get_i8())
    }
    fn bool(&mut self) -> Wire<bool> {
        Ok(self.i8()? != 0)
    }
    fn i16(&mut self) -> Wire<i16> {
        self.need(2, "int16")?;
        Ok(self.buf.get_i16())
    }
    fn u16(&mut self) -> Wire<u16> {
        self.need(2, "uint16")?;
        Ok(self.buf.get_u16())
    }
    fn i32(&mut self) -> Wire<i32> {
        self.need(4, "int32")?;
        Ok(self.buf.get_i32())
    }
    fn i64(&mut self) -> Wire<i64> {
        self.need(8, "int64")?;
        Ok(self.buf.get_i64())
    }
    fn uuid(&mut self) -> Wire<[u8; 16]> {
        self.need(16, "uuid")?;
        let mut id = [0u8; 16];
        self.buf.copy_to_slice(&mut id);
        Ok(id)
    }
    fn varint(&mut self) -> Wire<u32> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.i8()? as u8;
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError("unsigned varint longer than 5 bytes".into()))
    }
    /// A compact length: None for null (0 on the wire), else the count, bounded by the bytes
    /// left (every element takes at least one).
    fn length(&mut self, what: &str) -> Wire<Option<usize>> {
        let n = self.varint()? as usize;
        if n == 0 {
            return Ok(None);
        }
        let n = n - 1;
        if n > self.buf.remaining() {
            return Err(WireError(format!(
                "{what}: {n} elements or bytes announced, {} bytes left",
                self.buf.remaining()
            )));
        }
        Ok(Some(n))
    }
    fn nullable_string(&mut self) -> Wire<Option<String>> {
        let Some(n) = self.length("string")? else {
            return Ok(None);
        };
        let bytes = self.buf.copy_to_bytes(n);
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| WireError("a string that is not UTF-8".into()))
    }
    fn string(&mut self) -> Wire<String> {
        self.nullable_string()?
            .ok_or_else(|| WireError("null where a string is required".into()))
    }
    fn nullable_array<T>(
        &mut self,
        mut item: impl FnMut(&mut Reader) -> Wire<T>,
    ) -> Wire<Option<Vec<T>>> {
        let Some(n) = self.length("array")? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(item(self)?);
        }
        Ok(Some(out))
    }
    fn array<T>(&mut self, item: impl FnMut(&mut Reader) -> Wire<T>) -> Wire<Vec<T>> {
        self.nullable_array(item)?
            .ok_or_else(|| WireError("null where an array is required".into()))
    }
    /// Skips a tagged-field section (lagwatch reads no tagged field of these messages).
    fn tagged_fields(&mut self) -> Wire<()> {
        let count = self.varint()?;
        for _ in 0..count {
            self.varint()?;
            let size = self.varint()? as usize;
            self.need(size, "tagged field")?;
            self.buf.advance(size);
        }
        Ok(())
    }
    /// A nullable struct's marker: false for null (-1), true when the struct follows.
    fn present(&mut self) -> Wire<bool> {
        Ok(self.i8()? >= 0)
    }
}

/// Writers of the flexible-version encoding.
fn put_varint(buf: &mut impl BufMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

fn put_length(buf: &mut impl BufMut, n: Option<usize>) -> anyhow::Result<()> {
    let n = match n {
        None => 0,
        Some(n) => u32::try_from(n + 1).map_err(|_| WireError("too long".into()))?,
    };
    put_varint(buf, n);
    Ok(())
}

fn put_string(buf: &mut impl BufMut, s: Option<&str>) -> anyhow::Result<()> {
    put_length(buf, s.map(str::len))?;
    if let Some(s) = s {
        buf.put_slice(s.as_bytes());
    }
    Ok(())
}

fn put_no_tags(buf: &mut impl BufMut) {
    put_varint(buf, 0);
}

/// Encodes into a vector, whose length gives `compute_size`.
fn size_of(encode: impl FnOnce(&mut Vec<u8>) -> anyhow::Result<()>) -> anyhow::Result<usize> {
    let mut v = Vec::new();
    encode(&mut v)?;
    Ok(v.len())
}

fn reader<B: ByteBuf>(buf: &mut B) -> Reader {
    Reader {
        buf: buf.copy_to_bytes(buf.remaining()),
    }
}

/// An answer must end where its last field does.
fn finish(r: Reader) -> anyhow::Result<()> {
    if r.buf.has_remaining() {
        return Err(WireError(format!("{} bytes left after the answer", r.buf.remaining())).into());
    }
    Ok(())
}

// ---- DescribeShareGroupOffsets ----------------------------------------------------------------

/// DescribeShareGroupOffsets: every topic-partition of each group (`Topics` null).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeShareGroupOffsetsRequest {
    pub groups: Vec<String>,
}

/// Its answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeShareGroupOffsetsResponse {
    pub groups: Vec<ShareOffsetsGroup>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShareOffsetsGroup {
    pub group_id: String,
    pub topics: Vec<ShareOffsetsTopic>,
    pub error_code: i16,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShareOffsetsTopic {
    pub name: String,
    pub topic_id: [u8; 16],
    pub partitions: Vec<ShareOffsetsPartition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShareOffsetsPartition {
    pub partition: i32,
    /// The share-partition start offset: the first record not yet delivered for good.
    pub start_offset: i64,
    pub leader_epoch: i32,
    /// v1 (KIP-1226): records of the partition not yet delivered for good; -1 in v0, and where
    /// the broker does not know it.
    pub lag: i64,
    pub error_code: i16,
    pub error_message: Option<String>,
}

impl Message for DescribeShareGroupOffsetsRequest {
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };
    const DEPRECATED_VERSIONS: Option<VersionRange> = None;
}
impl Message for DescribeShareGroupOffsetsResponse {
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };
    const DEPRECATED_VERSIONS: Option<VersionRange> = None;
}
impl HeaderVersion for DescribeShareGroupOffsetsRequest {
    fn header_version(_: i16) -> i16 {
        2
    }
}
impl HeaderVersion for DescribeShareGroupOffsetsResponse {
    fn header_version(_: i16) -> i16 {
        1
    }
}
impl ProtocolRequest for DescribeShareGroupOffsetsRequest {
    const KEY: i16 = DESCRIBE_SHARE_GROUP_OFFSETS_KEY;
    type Response = DescribeShareGroupOffsetsResponse;
}

impl Encodable for DescribeShareGroupOffsetsRequest {
    fn encode<B: ByteBufMut>(&self, buf: &mut B, _version: i16) -> anyhow::Result<()> {
        put_length(buf, Some(self.groups.len()))?;
        for g in &self.groups {
            put_string(buf, Some(g))?;
            put_length(buf, None)?; // Topics: null, every topic-partition
            put_no_tags(buf);
        }
        put_no_tags(buf);
        Ok(())
    }
    fn compute_size(&self, version: i16) -> anyhow::Result<usize> {
        size_of(|v| self.encode(v, version))
    }
}

impl Decodable for DescribeShareGroupOffsetsRequest {
    fn decode<B: ByteBuf>(buf: &mut B, _version: i16) -> anyhow::Result<Self> {
        let mut r = reader(buf);
        let groups = r.array(|r| {
            let g = r.string()?;
            r.nullable_array(|r| {
                r.string()?;
                r.array(Reader::i32)?;
                r.tagged_fields()
            })?;
            r.tagged_fields()?;
            Ok(g)
        })?;
        r.tagged_fields()?;
        finish(r)?;
        Ok(DescribeShareGroupOffsetsRequest { groups })
    }
}

impl Decodable for DescribeShareGroupOffsetsResponse {
    fn decode<B: ByteBuf>(buf: &mut B, version: i16) -> anyhow::Result<Self> {
        let mut r = reader(buf);
        r.i32()?; // ThrottleTimeMs
        let groups = r.array(|r| {
            let group_id = r.string()?;
            let topics = r.array(|r| {
                let name = r.string()?;
                let topic_id = r.uuid()?;
                let partitions = r.array(|r| {
                    let partition = r.i32()?;
                    let start_offset = r.i64()?;
                    let leader_epoch = r.i32()?;
                    let lag = if version >= 1 { r.i64()? } else { -1 };
                    let error_code = r.i16()?;
                    let error_message = r.nullable_string()?;
                    r.tagged_fields()?;
                    Ok(ShareOffsetsPartition {
                        partition,
                        start_offset,
                        leader_epoch,
                        lag,
                        error_code,
                        error_message,
                    })
                })?;
                r.tagged_fields()?;
                Ok(ShareOffsetsTopic {
                    name,
                    topic_id,
                    partitions,
                })
            })?;
            let error_code = r.i16()?;
            let error_message = r.nullable_string()?;
            r.tagged_fields()?;
            Ok(ShareOffsetsGroup {
                group_id,
                topics,
                error_code,
                error_message,
            })
        })?;
        r.tagged_fields()?;
        finish(r)?;
        Ok(DescribeShareGroupOffsetsResponse { groups })
    }
}

impl Encodable for DescribeShareGroupOffsetsResponse {
    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> anyhow::Result<()> {
        buf.put_i32(0);
        put_length(buf, Some(self.groups.len()))?;
        for g in &self.groups {
            put_string(buf, Some(&g.group_id))?;
            put_length(buf, Some(g.topics.len()))?;
            for t in &g.topics {
                put_string(buf, Some(&t.name))?;
                buf.put_slice(&t.topic_id);
                put_length(buf, Some(t.partitions.len()))?;
                for p in &t.partitions {
                    buf.put_i32(p.partition);
                    buf.put_i64(p.start_offset);
                    buf.put_i32(p.leader_epoch);
                    if version >= 1 {
                        buf.put_i64(p.lag);
                    }
                    buf.put_i16(p.error_code);
                    put_string(buf, p.error_message.as_deref())?;
                    put_no_tags(buf);
                }
                put_no_tags(buf);
            }
            buf.put_i16(g.error_code);
            put_string(buf, g.error_message.as_deref())?;
            put_no_tags(buf);
        }
        put_no_tags(buf);
        Ok(())
    }
    fn compute_size(&self, version: i16) -> anyhow::Result<usize> {
        size_of(|v| self.encode(v, version))
    }
}

// ---- StreamsGroupDescribe ---------------------------------------------------------------------

/// StreamsGroupDescribe of some groups, without authorized operations or the topology
/// description (v1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamsGroupDescribeRequest {
    pub groups: Vec<String>,
}

/// Its answer: what lagwatch reads of each group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamsGroupDescribeResponse {
    pub groups: Vec<StreamsDescribedGroup>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamsDescribedGroup {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub group_id: String,
    /// As the broker names it: `Empty`, `NotReady`, `Assigning`, `Reconciling`, `Stable`,
    /// `Dead`.
    pub state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: Vec<StreamsMemberEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamsMemberEntry {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// One Kafka Streams process (several members when it runs several stream threads).
    pub process_id: String,
    pub active_tasks: Tasks,
    pub standby_tasks: Tasks,
}

impl Message for StreamsGroupDescribeRequest {
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };
    const DEPRECATED_VERSIONS: Option<VersionRange> = None;
}
impl Message for StreamsGroupDescribeResponse {
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };
    const DEPRECATED_VERSIONS: Option<VersionRange> = None;
}
impl HeaderVersion for StreamsGroupDescribeRequest {
    fn header_version(_: i16) -> i16 {
        2
    }
}
impl HeaderVersion for StreamsGroupDescribeResponse {
    fn header_version(_: i16) -> i16 {
        1
    }
}
impl ProtocolRequest for StreamsGroupDescribeRequest {
    const KEY: i16 = STREAMS_GROUP_DESCRIBE_KEY;
    type Response = StreamsGroupDescribeResponse;
}

impl Encodable for StreamsGroupDescribeRequest {
    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> anyhow::Result<()> {
        put_length(buf, Some(self.groups.len()))?;
        for g in &self.groups {
            put_string(buf, Some(g))?;
        }
        buf.put_u8(0); // IncludeAuthorizedOperations
        if version >= 1 {
            buf.put_u8(0); // IncludeTopologyDescription
        }
        put_no_tags(buf);
        Ok(())
    }
    fn compute_size(&self, version: i16) -> anyhow::Result<usize> {
        size_of(|v| self.encode(v, version))
    }
}

impl Decodable for StreamsGroupDescribeRequest {
    fn decode<B: ByteBuf>(buf: &mut B, version: i16) -> anyhow::Result<Self> {
        let mut r = reader(buf);
        let groups = r.array(Reader::string)?;
        r.bool()?;
        if version >= 1 {
            r.bool()?;
        }
        r.tagged_fields()?;
        finish(r)?;
        Ok(StreamsGroupDescribeRequest { groups })
    }
}

/// Tasks: (subtopology id, partitions of its input topics).
pub type Tasks = Vec<(String, Vec<i32>)>;

/// `[]TaskIds`.
fn task_ids(r: &mut Reader) -> Wire<Tasks> {
    r.array(|r| {
        let id = r.string()?;
        let partitions = r.array(Reader::i32)?;
        r.tagged_fields()?;
        Ok((id, partitions))
    })
}

/// `Assignment`: active, standby and warm-up tasks.
fn assignment(r: &mut Reader) -> Wire<[Tasks; 3]> {
    let active = task_ids(r)?;
    let standby = task_ids(r)?;
    let warmup = task_ids(r)?;
    r.tagged_fields()?;
    Ok([active, standby, warmup])
}

fn key_values(r: &mut Reader) -> Wire<()> {
    r.array(|r| {
        r.string()?;
        r.string()?;
        r.tagged_fields()
    })?;
    Ok(())
}

fn topic_infos(r: &mut Reader) -> Wire<()> {
    r.array(|r| {
        r.string()?; // Name
        r.i32()?; // Partitions
        r.i16()?; // ReplicationFactor
        key_values(r)?; // TopicConfigs
        r.tagged_fields()
    })?;
    Ok(())
}

fn task_offsets(r: &mut Reader) -> Wire<()> {
    r.array(|r| {
        r.string()?;
        r.i32()?;
        r.i64()?;
        r.tagged_fields()
    })?;
    Ok(())
}

/// `Topology` (nullable): skipped.
fn topology(r: &mut Reader) -> Wire<()> {
    if !r.present()? {
        return Ok(());
    }
    r.i32()?; // Epoch
    r.nullable_array(|r| {
        r.string()?; // SubtopologyId
        r.array(Reader::string)?; // SourceTopics
        r.array(Reader::string)?; // RepartitionSinkTopics
        topic_infos(r)?; // StateChangelogTopics
        topic_infos(r)?; // RepartitionSourceTopics
        r.tagged_fields()
    })?;
    r.tagged_fields()
}

/// `TopologyDescriptionNode`: skipped.
fn topology_node(r: &mut Reader) -> Wire<()> {
    r.string()?; // Name
    r.i8()?; // NodeType
    r.array(Reader::string)?; // SourceTopics
    r.nullable_string()?; // SinkTopic
    r.array(Reader::string)?; // Stores
    r.array(Reader::string)?; // Successors
    r.tagged_fields()
}

/// `TopologyDescription` (v1, nullable): skipped.
fn topology_description(r: &mut Reader) -> Wire<()> {
    if !r.present()? {
        return Ok(());
    }
    r.array(|r| {
        r.string()?;
        r.array(topology_node)?;
        r.tagged_fields()
    })?;
    r.array(|r| {
        topology_node(r)?;
        topology_node(r)?;
        r.tagged_fields()
    })?;
    r.tagged_fields()
}

fn streams_member(r: &mut Reader) -> Wire<StreamsMemberEntry> {
    let member_id = r.string()?;
    let member_epoch = r.i32()?;
    let instance_id = r.nullable_string()?;
    r.nullable_string()?; // RackId
    let client_id = r.string()?;
    let client_host = r.string()?;
    r.i32()?; // TopologyEpoch
    let process_id = r.string()?;
    if r.present()? {
        // UserEndpoint
        r.string()?;
        r.u16()?;
        r.tagged_fields()?;
    }
    key_values(r)?; // ClientTags
    task_offsets(r)?; // TaskOffsets
    task_offsets(r)?; // TaskEndOffsets
    let [active_tasks, standby_tasks, _] = assignment(r)?;
    assignment(r)?; // TargetAssignment
    r.bool()?; // IsClassic
    r.tagged_fields()?;
    Ok(StreamsMemberEntry {
        member_id,
        member_epoch,
        instance_id,
        client_id,
        client_host,
        process_id,
        active_tasks,
        standby_tasks,
    })
}

impl Decodable for StreamsGroupDescribeResponse {
    fn decode<B: ByteBuf>(buf: &mut B, version: i16) -> anyhow::Result<Self> {
        let mut r = reader(buf);
        r.i32()?; // ThrottleTimeMs
        let groups = r.array(|r| {
            let error_code = r.i16()?;
            let error_message = r.nullable_string()?;
            let group_id = r.string()?;
            let state = r.string()?;
            let group_epoch = r.i32()?;
            let assignment_epoch = r.i32()?;
            topology(r)?;
            let members = r.array(streams_member)?;
            r.i32()?; // AuthorizedOperations
            if version >= 1 {
                topology_description(r)?;
                r.i8()?; // TopologyDescriptionStatus
                r.nullable_string()?; // AssignorName
            }
            r.tagged_fields()?;
            Ok(StreamsDescribedGroup {
                error_code,
                error_message,
                group_id,
                state,
                group_epoch,
                assignment_epoch,
                members,
            })
        })?;
        r.tagged_fields()?;
        finish(r)?;
        Ok(StreamsGroupDescribeResponse { groups })
    }
}

fn put_task_ids(buf: &mut impl BufMut, tasks: &[(String, Vec<i32>)]) -> anyhow::Result<()> {
    put_length(buf, Some(tasks.len()))?;
    for (id, partitions) in tasks {
        put_string(buf, Some(id))?;
        put_length(buf, Some(partitions.len()))?;
        for p in partitions {
            buf.put_i32(*p);
        }
        put_no_tags(buf);
    }
    Ok(())
}

impl Encodable for StreamsGroupDescribeResponse {
    /// What lagwatch keeps; the fields it skips are written empty or null.
    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> anyhow::Result<()> {
        buf.put_i32(0);
        put_length(buf, Some(self.groups.len()))?;
        for g in &self.groups {
            buf.put_i16(g.error_code);
            put_string(buf, g.error_message.as_deref())?;
            put_string(buf, Some(&g.group_id))?;
            put_string(buf, Some(&g.state))?;
            buf.put_i32(g.group_epoch);
            buf.put_i32(g.assignment_epoch);
            buf.put_i8(-1); // Topology
            put_length(buf, Some(g.members.len()))?;
            for m in &g.members {
                put_string(buf, Some(&m.member_id))?;
                buf.put_i32(m.member_epoch);
                put_string(buf, m.instance_id.as_deref())?;
                put_string(buf, None)?; // RackId
                put_string(buf, Some(&m.client_id))?;
                put_string(buf, Some(&m.client_host))?;
                buf.put_i32(0); // TopologyEpoch
                put_string(buf, Some(&m.process_id))?;
                buf.put_i8(-1); // UserEndpoint
                for _ in 0..3 {
                    put_length(buf, Some(0))?; // ClientTags, TaskOffsets, TaskEndOffsets
                }
                put_task_ids(buf, &m.active_tasks)?;
                put_task_ids(buf, &m.standby_tasks)?;
                put_task_ids(buf, &[])?;
                put_no_tags(buf);
                for _ in 0..3 {
                    put_task_ids(buf, &[])?; // TargetAssignment
                }
                put_no_tags(buf);
                buf.put_u8(0); // IsClassic
                put_no_tags(buf);
            }
            buf.put_i32(i32::MIN); // AuthorizedOperations
            if version >= 1 {
                buf.put_i8(-1);
                buf.put_i8(0);
                put_string(buf, None)?;
            }
            put_no_tags(buf);
        }
        put_no_tags(buf);
        Ok(())
    }
    fn compute_size(&self, version: i16) -> anyhow::Result<usize> {
        size_of(|v| self.encode(v, version))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The answers below are written field by field from Kafka's message definitions.
    pub(in crate::kafka::native) fn share_offsets_v1_answer() -> Vec<u8> {
        [
            &[0, 0, 0, 0][..], // ThrottleTimeMs
            &[3],              // Groups: 2
            &[3, b'g', b'1'],  // GroupId
            &[2],              // Topics: 1
            &[2, b't'],        // TopicName
            &[0x11; 16],       // TopicId
            &[3],              // Partitions: 2
            &[0, 0, 0, 0],     // PartitionIndex 0
            &[0, 0, 0, 0, 0, 0, 0, 70],
            &[0, 0, 0, 5],              // LeaderEpoch
            &[0, 0, 0, 0, 0, 0, 0, 12], // Lag (v1)
            &[0, 0],                    // ErrorCode
            &[0],                       // ErrorMessage: null
            &[0],                       // tagged fields
            &[0, 0, 0, 1],              // PartitionIndex 1: no state yet
            &[0xff; 8],                 // StartOffset -1
            &[0xff; 4],                 // LeaderEpoch -1
            &[0xff; 8],                 // Lag -1
            &[0, 0],
            &[0],
            &[0],
            &[0],                         // topic tagged fields
            &[0, 0],                      // group ErrorCode
            &[0],                         // group ErrorMessage: null
            &[0],                         // group tagged fields
            &[3, b'g', b'2'],             // GroupId
            &[1],                         // Topics: 0
            &[0, 69],                     // ErrorCode 69: GROUP_ID_NOT_FOUND
            &[5, b'g', b'o', b'n', b'e'], // ErrorMessage
            &[0],                         // group tagged fields
            &[1, 0, 2, 0xaa, 0xbb],       // tagged fields: one unknown, tag 0, 2 bytes
        ]
        .concat()
    }

    #[test]
    fn a_describe_share_group_offsets_v1_answer_decodes_with_its_lag() {
        let answer = DescribeShareGroupOffsetsResponse::decode(
            &mut Bytes::from(share_offsets_v1_answer()),
            1,
        )
        .expect("decodes");
        assert_eq!(answer.groups.len(), 2);
        let g1 = &answer.groups[0];
        assert_eq!((g1.group_id.as_str(), g1.error_code), ("g1", 0));
        assert_eq!(g1.topics[0].name, "t");
        assert_eq!(g1.topics[0].topic_id, [0x11; 16]);
        let p = &g1.topics[0].partitions;
        assert_eq!(
            (
                p[0].partition,
                p[0].start_offset,
                p[0].leader_epoch,
                p[0].lag
            ),
            (0, 70, 5, 12)
        );
        assert_eq!((p[1].partition, p[1].start_offset, p[1].lag), (1, -1, -1));
        let g2 = &answer.groups[1];
        assert_eq!(
            (
                g2.group_id.as_str(),
                g2.error_code,
                g2.error_message.as_deref()
            ),
            ("g2", 69, Some("gone"))
        );
        // Encoding what was kept gives the same answer back (less the unknown tagged field).
        let mut again = Vec::new();
        answer.encode(&mut again, 1).expect("encodes");
        let decoded = DescribeShareGroupOffsetsResponse::decode(&mut Bytes::from(again), 1);
        assert_eq!(decoded.expect("decodes"), answer);
    }

    #[test]
    fn a_describe_share_group_offsets_v0_answer_has_no_lag() {
        let v0 = [
            &[0, 0, 0, 0][..],
            &[2],
            &[2, b'g'],
            &[2],
            &[2, b't'],
            &[0; 16],
            &[2],
            &[0, 0, 0, 2],             // PartitionIndex
            &[0, 0, 0, 0, 0, 0, 1, 0], // StartOffset 256
            &[0, 0, 0, 0],             // LeaderEpoch
            &[0, 0],
            &[0],
            &[0],
            &[0],
            &[0, 0],
            &[0],
            &[0],
            &[0],
        ]
        .concat();
        let answer =
            DescribeShareGroupOffsetsResponse::decode(&mut Bytes::from(v0), 0).expect("decodes");
        let p = &answer.groups[0].topics[0].partitions[0];
        assert_eq!((p.partition, p.start_offset, p.lag), (2, 256, -1));
    }

    pub(in crate::kafka::native) fn streams_describe_v1_answer() -> Vec<u8> {
        [
            &[0, 0, 0, 0][..],                                          // ThrottleTimeMs
            &[2],                                                       // Groups: 1
            &[0, 0],                                                    // ErrorCode
            &[0],                                                       // ErrorMessage: null
            &[2, b's'],                                                 // GroupId
            &[7, b'S', b't', b'a', b'b', b'l', b'e'],                   // GroupState
            &[0, 0, 0, 3],                                              // GroupEpoch
            &[0, 0, 0, 3],                                              // AssignmentEpoch
            &[1],                                                       // Topology: present
            &[0, 0, 0, 1],                                              // Epoch
            &[2],                                                       // Subtopologies: 1
            &[2, b'0'],                                                 // SubtopologyId
            &[2, 2, b't'],                                              // SourceTopics: ["t"]
            &[1],                                                       // RepartitionSinkTopics: []
            &[2, 2, b'c', 0, 0, 0, 0, 0, 0, 2, 2, b'k', 2, b'v', 0, 0], // StateChangelogTopics: 1 with a config
            &[1],                                                 // RepartitionSourceTopics: []
            &[0],                                                 // subtopology tagged fields
            &[0],                                                 // topology tagged fields
            &[2],                                                 // Members: 1
            &[2, b'm'],                                           // MemberId
            &[0, 0, 0, 3],                                        // MemberEpoch
            &[0],                                                 // InstanceId: null
            &[0],                                                 // RackId: null
            &[2, b'c'],                                           // ClientId
            &[3, b'/', b'h'],                                     // ClientHost
            &[0, 0, 0, 1],                                        // TopologyEpoch
            &[2, b'p'],                                           // ProcessId
            &[1, 2, b'h', 0x1f, 0x90, 0],                         // UserEndpoint: h:8080
            &[2, 2, b'k', 2, b'v', 0],                            // ClientTags: k=v
            &[2, 2, b'0', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0], // TaskOffsets: 0_1 at 9
            &[1],                                                 // TaskEndOffsets: []
            &[2, 2, b'0', 3, 0, 0, 0, 0, 0, 0, 0, 1, 0], // Assignment.ActiveTasks: 0 [0, 1]
            &[1],                                        // StandbyTasks
            &[1],                                        // WarmupTasks
            &[0],                                        // assignment tagged fields
            &[1, 1, 1, 0],                               // TargetAssignment: empty
            &[0],                                        // IsClassic
            &[0],                                        // member tagged fields
            &[0x80, 0, 0, 0],                            // AuthorizedOperations
            &[0xff],                                     // TopologyDescription: null (v1)
            &[0],                                        // TopologyDescriptionStatus (v1)
            &[7, b's', b't', b'i', b'c', b'k', b'y'],    // AssignorName (v1)
            &[0],                                        // group tagged fields
            &[0],                                        // tagged fields
        ]
        .concat()
    }

    #[test]
    fn a_streams_group_describe_v1_answer_decodes_skipping_the_topology() {
        let answer =
            StreamsGroupDescribeResponse::decode(&mut Bytes::from(streams_describe_v1_answer()), 1)
                .expect("decodes");
        let g = &answer.groups[0];
        assert_eq!(
            (g.error_code, g.group_id.as_str(), g.state.as_str()),
            (0, "s", "Stable")
        );
        assert_eq!((g.group_epoch, g.assignment_epoch), (3, 3));
        let m = &g.members[0];
        assert_eq!(
            (
                m.member_id.as_str(),
                m.process_id.as_str(),
                m.client_id.as_str(),
                m.client_host.as_str()
            ),
            ("m", "p", "c", "/h")
        );
        assert_eq!(m.active_tasks, vec![("0".to_string(), vec![0, 1])]);
        assert!(m.standby_tasks.is_empty());
        // Read as v0, the v1 fields are taken for the group's tagged fields and the rest: an
        // error, not a wrong answer.
        assert!(StreamsGroupDescribeResponse::decode(
            &mut Bytes::from(streams_describe_v1_answer()),
            0
        )
        .is_err());
    }

    #[test]
    fn truncated_or_lying_answers_are_errors_not_panics() {
        for (answer, version, decode) in [
            (
                share_offsets_v1_answer(),
                1,
                (|b: &mut Bytes, v| DescribeShareGroupOffsetsResponse::decode(b, v).map(|_| ()))
                    as fn(&mut Bytes, i16) -> anyhow::Result<()>,
            ),
            (streams_describe_v1_answer(), 1, |b, v| {
                StreamsGroupDescribeResponse::decode(b, v).map(|_| ())
            }),
        ] {
            for cut in 0..answer.len() {
                assert!(
                    decode(&mut Bytes::copy_from_slice(&answer[..cut]), version).is_err(),
                    "cut at {cut}"
                );
            }
            // An array that claims more elements than there are bytes.
            let mut lying = answer.clone();
            lying[4] = 0x7f;
            assert!(decode(&mut Bytes::from(lying), version).is_err());
        }
    }

    #[test]
    fn requests_encode_as_the_definitions_say() {
        let share = DescribeShareGroupOffsetsRequest {
            groups: vec!["g1".into()],
        };
        let mut out = Vec::new();
        share.encode(&mut out, 1).expect("encodes");
        // Groups: 1 ["g1", Topics: null, no tags], no tags.
        assert_eq!(out, [2, 3, b'g', b'1', 0, 0, 0]);
        assert_eq!(share.compute_size(1).expect("size"), out.len());
        let back = DescribeShareGroupOffsetsRequest::decode(&mut Bytes::from(out), 1);
        assert_eq!(back.expect("decodes"), share);

        let streams = StreamsGroupDescribeRequest {
            groups: vec!["s".into()],
        };
        let mut v0 = Vec::new();
        streams.encode(&mut v0, 0).expect("encodes");
        // GroupIds: ["s"], IncludeAuthorizedOperations false, no tags.
        assert_eq!(v0, [2, 2, b's', 0, 0]);
        let mut v1 = Vec::new();
        streams.encode(&mut v1, 1).expect("encodes");
        // v1 adds IncludeTopologyDescription false.
        assert_eq!(v1, [2, 2, b's', 0, 0, 0]);
    }
}
