// See spool.h.
#include "agent/spool.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace pgfleet::agent {

namespace {

constexpr std::string_view kBatchSuffix = ".batch";
constexpr std::string_view kTmpSuffix = ".tmp";
constexpr size_t kSpoolSeqDigits = 20;

// Returns "<what> \"<path>\": <strerror(errno)>".
std::string errno_message(const char *what, const std::string &path) {
    return std::string(what) + " \"" + path + "\": " + strerror(errno);
}

bool ends_with(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// Parses the leading spool_seq of a batch file name; false if the name is not a spool batch.
bool parse_spool_seq(std::string_view name, uint64_t *seq) {
    if (!ends_with(name, kBatchSuffix) || name.size() <= kSpoolSeqDigits || name[kSpoolSeqDigits] != '-')
        return false;
    uint64_t value = 0;
    for (size_t i = 0; i < kSpoolSeqDigits; i++) {
        if (name[i] < '0' || name[i] > '9') return false;
        value = value * 10 + (name[i] - '0');
    }
    *seq = value;
    return true;
}

// Creates dir and its missing parents with mode 0700; false with errno set.
bool make_directories(const std::string &dir) {
    for (size_t pos = 1; pos <= dir.size(); pos++) {
        if (pos != dir.size() && dir[pos] != '/') continue;
        std::string prefix = dir.substr(0, pos);
        if (mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) return false;
    }
    struct stat info;
    if (stat(dir.c_str(), &info) != 0) return false;
    if (!S_ISDIR(info.st_mode)) {
        errno = ENOTDIR;
        return false;
    }
    return true;
}

// fsyncs a directory so that a rename or create inside it is durable.
bool fsync_directory(const std::string &dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc == 0;
}

// Writes all of bytes to fd, retrying on EINTR and short writes.
bool write_all(int fd, const char *data, size_t length) {
    while (length > 0) {
        ssize_t n = write(fd, data, length);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data += n;
        length -= static_cast<size_t>(n);
    }
    return true;
}

}  // namespace

bool Spool::open(const std::string &dir, std::string *error) {
    dir_ = dir;
    names_.clear();
    sizes_.clear();
    memory_.clear();
    is_memory_.clear();
    total_bytes_ = 0;
    memory_count_ = 0;
    next_spool_seq_ = 1;
    if (!make_directories(dir_)) {
        *error = errno_message("could not create spool directory", dir_);
        return false;
    }
    DIR *handle = opendir(dir_.c_str());
    if (handle == nullptr) {
        *error = errno_message("could not open spool directory", dir_);
        return false;
    }
    std::vector<std::string> found;
    errno = 0;
    while (struct dirent *entry = readdir(handle)) {
        std::string_view name = entry->d_name;
        uint64_t seq;
        if (ends_with(name, kTmpSuffix)) {
            std::string path = dir_ + "/" + std::string(name);
            unlink(path.c_str());  // torn write from a crash; best effort
        } else if (parse_spool_seq(name, &seq)) {
            found.emplace_back(name);
            next_spool_seq_ = std::max(next_spool_seq_, seq + 1);
        }
        errno = 0;
    }
    int read_errno = errno;
    closedir(handle);
    if (read_errno != 0) {
        errno = read_errno;
        *error = errno_message("could not read spool directory", dir_);
        return false;
    }
    std::sort(found.begin(), found.end());
    for (const std::string &name : found) {
        struct stat info;
        std::string path = dir_ + "/" + name;
        uint64_t size = stat(path.c_str(), &info) == 0 ? static_cast<uint64_t>(info.st_size) : 0;
        names_.push_back(name);
        sizes_.push_back(size);
        memory_.emplace_back();
        is_memory_.push_back(false);
        total_bytes_ += size;
    }
    return true;
}

void Spool::pop_oldest() {
    total_bytes_ -= sizes_.front();
    if (is_memory_.front()) memory_count_--;
    names_.pop_front();
    sizes_.pop_front();
    memory_.pop_front();
    is_memory_.pop_front();
}

size_t Spool::enforce_limit(uint64_t max_bytes) {
    size_t dropped = 0;
    while (total_bytes_ > max_bytes && names_.size() > 1) {
        if (!is_memory_.front()) {
            std::string path = dir_ + "/" + names_.front();
            unlink(path.c_str());  // best effort: a file that stays is only published late, deduplicated
        }
        pop_oldest();
        dropped++;
    }
    return dropped;
}

bool Spool::append(std::string_view boot_id, uint64_t batch_seq, const std::string &bytes, std::string *error,
                   bool *enospc) {
    if (dir_.empty()) {
        fprintf(stderr, "pgfleet-agent: Spool::append called before open\n");
        abort();
    }
    char name[160];
    snprintf(name, sizeof name, "%020llu-%.*s-%020llu.batch", static_cast<unsigned long long>(next_spool_seq_),
             static_cast<int>(boot_id.size()), boot_id.data(), static_cast<unsigned long long>(batch_seq));
    path_buffer_.assign(dir_).append("/").append(name);
    tmp_path_buffer_.assign(path_buffer_).append(kTmpSuffix);

    if (enospc != nullptr) *enospc = false;
    // Keeps the batch in memory after a failed write (errno describes the failure).
    auto keep_in_memory = [&](const char *what) {
        int saved = errno;
        *error = errno_message(what, tmp_path_buffer_) + "; keeping the batch in memory";
        if (enospc != nullptr) *enospc = saved == ENOSPC || saved == EDQUOT;
        names_.emplace_back(name);
        sizes_.push_back(bytes.size());
        memory_.push_back(bytes);
        is_memory_.push_back(true);
        total_bytes_ += bytes.size();
        memory_count_++;
        next_spool_seq_++;
        return false;
    };
    int fd = ::open(tmp_path_buffer_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return keep_in_memory("could not create spool file");
    if (!write_all(fd, bytes.data(), bytes.size()) || fsync(fd) != 0) {
        int saved = errno;
        close(fd);
        unlink(tmp_path_buffer_.c_str());
        errno = saved;
        return keep_in_memory("could not write spool file");
    }
    if (close(fd) != 0) {
        int saved = errno;
        unlink(tmp_path_buffer_.c_str());
        errno = saved;
        return keep_in_memory("could not close spool file");
    }
    if (rename(tmp_path_buffer_.c_str(), path_buffer_.c_str()) != 0) {
        int saved = errno;
        unlink(tmp_path_buffer_.c_str());
        errno = saved;
        return keep_in_memory("could not rename spool file");
    }
    error->clear();
    if (!fsync_directory(dir_)) *error = errno_message("could not fsync spool directory", dir_);
    names_.emplace_back(name);
    sizes_.push_back(bytes.size());
    memory_.emplace_back();
    is_memory_.push_back(false);
    total_bytes_ += bytes.size();
    next_spool_seq_++;
    return true;
}

bool Spool::read_oldest(std::string *bytes, std::string *error) const {
    if (is_memory_.front()) {
        bytes->assign(memory_.front());
        return true;
    }
    std::string path = dir_ + "/" + names_.front();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *error = errno_message("could not open spool file", path);
        return false;
    }
    struct stat info;
    if (fstat(fd, &info) != 0) {
        *error = errno_message("could not stat spool file", path);
        close(fd);
        return false;
    }
    bytes->resize(static_cast<size_t>(info.st_size));
    size_t used = 0;
    while (used < bytes->size()) {
        ssize_t n = read(fd, &(*bytes)[used], bytes->size() - used);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) errno = EIO;  // file shrank under us
            *error = errno_message("could not read spool file", path);
            close(fd);
            return false;
        }
        used += static_cast<size_t>(n);
    }
    close(fd);
    return true;
}

bool Spool::remove_oldest(std::string *error) {
    std::string path = dir_ + "/" + names_.front();
    bool memory = is_memory_.front();
    pop_oldest();
    if (memory) return true;
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
        *error = errno_message("could not remove spool file", path);
        return false;
    }
    return true;
}

bool Spool::quarantine_oldest(std::string *error) {
    std::string path = dir_ + "/" + names_.front();
    bool memory = is_memory_.front();
    pop_oldest();
    if (memory) return true;  // an in-memory batch has no file to set aside
    std::string target = path + ".corrupt";
    if (rename(path.c_str(), target.c_str()) != 0) {
        *error = errno_message("could not rename spool file", path);
        return false;
    }
    return true;
}

}  // namespace pgfleet::agent
