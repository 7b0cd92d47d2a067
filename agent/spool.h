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
// Bound: the spool tracks the bytes it holds; enforce_limit(max) drops the oldest batches (never the newest
// one) until the total is within max, and returns how many it dropped (the caller counts and reports them).
//
// Disk trouble: when a batch cannot be written (ENOSPC, EIO, a read-only file system...), append() keeps it
// in memory instead, as an entry in the same ordered list, so it is still published in order; such
// entries count toward the bound too, so memory stays bounded by spool_max_bytes. They do not survive a
// restart (the caller counts them as write failures and reports them).
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
    // written to disk: the batch is then kept in memory (listed; see above) and *enospc tells whether the
    // disk was full. Returns true with a non-empty *error when the file was stored but the directory
    // fsync failed (the batch is listed; only its survival of a power loss is in doubt).
    bool append(std::string_view boot_id, uint64_t batch_seq, const std::string &bytes, std::string *error,
                bool *enospc = nullptr);

    // Drops the oldest batches (files are unlinked) until at most max_bytes are held, always keeping the
    // newest batch; returns the number dropped.
    size_t enforce_limit(uint64_t max_bytes);

    // Number of batches waiting, and their bytes (files and memory).
    size_t size() const { return names_.size(); }
    bool empty() const { return names_.empty(); }
    uint64_t bytes() const { return total_bytes_; }
    // Number of waiting batches held in memory only.
    size_t in_memory() const { return memory_count_; }

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
    // Bookkeeping of the oldest entry being removed from the lists.
    void pop_oldest();

    std::string dir_;
    std::deque<std::string> names_;
    std::deque<uint64_t> sizes_;         // bytes of each entry, parallel to names_
    std::deque<std::string> memory_;     // content of in-memory entries ("" for files), parallel to names_
    std::deque<bool> is_memory_;         // parallel to names_
    uint64_t total_bytes_ = 0;
    size_t memory_count_ = 0;
    uint64_t next_spool_seq_ = 1;
    std::string path_buffer_;
    std::string tmp_path_buffer_;
};

}  // namespace pgfleet::agent
