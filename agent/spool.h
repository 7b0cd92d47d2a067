// The on-disk spool: every sealed batch is a file in spool_dir until JetStream has acknowledged it.
//
// File names are  <spool_seq:20 digits>-<boot_id>-<batch_seq:20 digits>.batch
// spool_seq is a counter local to the spool directory (max found at open + 1), so lexical order of names is
// the order in which batches were sealed, independent of wall-clock steps and across agent restarts (each
// restart has a new boot_id but continues the counter while files remain). The file content is the
// serialized Envelope, nothing else: its header (agent_id, namespace, boot_id, batch_seq) is the truth
// used to build the subject and Nats-Msg-Id when the batch is published, even after a config change.
//
// Writing is atomic: the bytes go to "<name>.tmp", are fsync'ed, renamed to "<name>", and the directory
// is fsync'ed. A crash leaves either no file or a complete one; leftover ".tmp" files (torn writes) are
// removed at open and never listed. Removal after the PubAck is a plain unlink: if a crash resurrects the
// file, the batch is published again and the centre deduplicates it by (agent_id, boot_id, batch_seq).
//
// Only the main thread uses a Spool. The ordered list of names is kept in memory, so the directory is
// scanned once at open, not every interval.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace pgfleet::agent {

class Spool {
public:
    // Opens the spool directory (creating it with mode 0700, parents included, when missing), removes torn
    // ".tmp" files and loads the ordered list of batches; false with *error set on failure.
    bool open(const std::string &dir, std::string *error);

    // Durably stores a sealed batch as the newest entry; false with *error set when it could not be
    // stored (nothing is listed then). Returns true with a non-empty *error when the file was stored but
    // the directory fsync failed (the batch is listed; only its survival of a power loss is in doubt).
    bool append(std::string_view boot_id, uint64_t batch_seq, const std::string &bytes, std::string *error);

    // Number of batches waiting.
    size_t size() const { return names_.size(); }
    bool empty() const { return names_.empty(); }

    // File name of the oldest batch; only valid when !empty().
    const std::string &oldest() const { return names_.front(); }

    // Reads the oldest batch into *bytes (reusing its capacity); false with *error set on failure.
    bool read_oldest(std::string *bytes, std::string *error) const;

    // Deletes the oldest batch (after its PubAck); false with *error set if the unlink failed (the
    // entry is dropped from the list anyway: it was delivered, a resurrected file is only a duplicate).
    bool remove_oldest(std::string *error);

    // Renames the oldest batch to "<name>.corrupt" and drops it from the list, so that one unreadable
    // file cannot block the spool forever; the file is kept for inspection.
    bool quarantine_oldest(std::string *error);

    // All waiting file names, oldest first (for tests and --check).
    const std::deque<std::string> &names() const { return names_; }

private:
    std::string dir_;
    std::deque<std::string> names_;
    uint64_t next_spool_seq_ = 1;
    std::string path_buffer_;
    std::string tmp_path_buffer_;
};

}  // namespace pgfleet::agent
