// The on-disk spool: append/list in order, read and delete the oldest, survive re-opening (as after a
// restart), ignore and remove torn ".tmp" files, and set a file aside as ".corrupt".
#include "agent/spool.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <set>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

using pgfleet::agent::Spool;

namespace {

class SpoolTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/pgfleet-agent-spool-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        root_ = pattern;
        dir_ = root_ + "/a/spool";  // parents are created by open()
    }
    void TearDown() override {
        std::string command = "rm -rf '" + root_ + "'";
        ASSERT_EQ(system(command.c_str()), 0);
    }
    // Names of all files in the spool directory.
    std::set<std::string> files() const {
        std::set<std::string> names;
        DIR *handle = opendir(dir_.c_str());
        while (struct dirent *entry = readdir(handle))
            if (entry->d_name[0] != '.') names.insert(entry->d_name);
        closedir(handle);
        return names;
    }
    std::string root_;
    std::string dir_;
    std::string error_;
};

}  // namespace

TEST_F(SpoolTest, AppendListReadDeleteInOrder) {
    Spool spool;
    ASSERT_TRUE(spool.open(dir_, &error_)) << error_;
    struct stat info;
    ASSERT_EQ(stat(dir_.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0700u);
    EXPECT_TRUE(spool.empty());

    for (uint64_t seq = 1; seq <= 12; seq++)
        ASSERT_TRUE(spool.append("boot-a", seq, "payload-" + std::to_string(seq), &error_)) << error_;
    ASSERT_EQ(spool.size(), 12u);
    EXPECT_EQ(spool.oldest(), "00000000000000000001-boot-a-00000000000000000001.batch");
    EXPECT_EQ(files().size(), 12u);

    std::string bytes;
    for (uint64_t seq = 1; seq <= 12; seq++) {
        ASSERT_TRUE(spool.read_oldest(&bytes, &error_)) << error_;
        EXPECT_EQ(bytes, "payload-" + std::to_string(seq));  // 10 after 9: order is numeric, not lexical
        ASSERT_TRUE(spool.remove_oldest(&error_)) << error_;
    }
    EXPECT_TRUE(spool.empty());
    EXPECT_TRUE(files().empty());
}

TEST_F(SpoolTest, SurvivesReopenAndKeepsOrderAcrossBoots) {
    {
        Spool spool;
        ASSERT_TRUE(spool.open(dir_, &error_)) << error_;
        ASSERT_TRUE(spool.append("boot-z", 1, "z1", &error_));
        ASSERT_TRUE(spool.append("boot-z", 2, "z2", &error_));
        ASSERT_TRUE(spool.remove_oldest(&error_));
    }
    // A restart: new boot id that sorts before the old one; the spool counter still orders it last.
    Spool spool;
    ASSERT_TRUE(spool.open(dir_, &error_)) << error_;
    ASSERT_EQ(spool.size(), 1u);
    ASSERT_TRUE(spool.append("boot-a", 1, "a1", &error_));
    ASSERT_EQ(spool.size(), 2u);
    std::string bytes;
    ASSERT_TRUE(spool.read_oldest(&bytes, &error_));
    EXPECT_EQ(bytes, "z2");
    ASSERT_TRUE(spool.remove_oldest(&error_));
    ASSERT_TRUE(spool.read_oldest(&bytes, &error_));
    EXPECT_EQ(bytes, "a1");
    EXPECT_EQ(spool.oldest(), "00000000000000000003-boot-a-00000000000000000001.batch");
}

TEST_F(SpoolTest, TornTmpFilesAndStrangersAreIgnored) {
    {
        Spool spool;
        ASSERT_TRUE(spool.open(dir_, &error_)) << error_;
        ASSERT_TRUE(spool.append("boot", 1, "one", &error_));
    }
    // A crash between create and rename leaves a torn .tmp; someone also dropped an unrelated file.
    std::ofstream(dir_ + "/00000000000000000002-boot-00000000000000000002.batch.tmp") << "tor";
    std::ofstream(dir_ + "/README") << "not a batch";
    Spool spool;
    ASSERT_TRUE(spool.open(dir_, &error_)) << error_;
    ASSERT_EQ(spool.size(), 1u);
    EXPECT_EQ(spool.oldest(), "00000000000000000001-boot-00000000000000000001.batch");
    EXPECT_EQ(files(), (std::set<std::string>{"00000000000000000001-boot-00000000000000000001.batch", "README"}));
    // The counter continues after the surviving batch, not after the torn one.
    ASSERT_TRUE(spool.append("boot", 2, "two", &error_));
    EXPECT_EQ(spool.names().back(), "00000000000000000002-boot-00000000000000000002.batch");
}

TEST_F(SpoolTest, QuarantineSetsFileAside) {
    Spool spool;
    ASSERT_TRUE(spool.open(dir_, &error_)) << error_;
    ASSERT_TRUE(spool.append("boot", 1, "garbage", &error_));
    ASSERT_TRUE(spool.append("boot", 2, "good", &error_));
    ASSERT_TRUE(spool.quarantine_oldest(&error_)) << error_;
    EXPECT_EQ(spool.size(), 1u);
    EXPECT_EQ(files().count("00000000000000000001-boot-00000000000000000001.batch.corrupt"), 1u);
    Spool reopened;
    ASSERT_TRUE(reopened.open(dir_, &error_));
    EXPECT_EQ(reopened.size(), 1u);  // .corrupt is not listed again
}

TEST_F(SpoolTest, OpenFailsOnAFile) {
    std::ofstream(root_ + "/file") << "x";
    Spool spool;
    EXPECT_FALSE(spool.open(root_ + "/file", &error_));
    EXPECT_NE(error_.find("could not create spool directory"), std::string::npos) << error_;
}

TEST_F(SpoolTest, BytesAreCountedAcrossReopen) {
    {
        Spool spool;
        ASSERT_TRUE(spool.open(dir_, &error_)) << error_;
        ASSERT_TRUE(spool.append("b", 1, std::string(100, 'x'), &error_));
        ASSERT_TRUE(spool.append("b", 2, std::string(50, 'y'), &error_));
        EXPECT_EQ(spool.bytes(), 150u);
        ASSERT_TRUE(spool.remove_oldest(&error_));
        EXPECT_EQ(spool.bytes(), 50u);
        ASSERT_TRUE(spool.append("b", 3, std::string(30, 'z'), &error_));
    }
    Spool spool;
    ASSERT_TRUE(spool.open(dir_, &error_));
    EXPECT_EQ(spool.bytes(), 80u);
}

TEST_F(SpoolTest, LimitDropsOldestFirstButKeepsTheNewest) {
    Spool spool;
    ASSERT_TRUE(spool.open(dir_, &error_)) << error_;
    for (uint64_t seq = 1; seq <= 5; seq++) ASSERT_TRUE(spool.append("b", seq, std::string(100, 'a'), &error_));
    EXPECT_EQ(spool.enforce_limit(1000), 0u);
    EXPECT_EQ(spool.enforce_limit(250), 3u);
    EXPECT_EQ(spool.size(), 2u);
    EXPECT_EQ(spool.bytes(), 200u);
    EXPECT_EQ(spool.oldest(), "00000000000000000004-b-00000000000000000004.batch");
    EXPECT_EQ(files().size(), 2u);  // dropped files are gone from the disk
    ASSERT_TRUE(spool.append("b", 6, std::string(5000, 'a'), &error_));
    EXPECT_EQ(spool.enforce_limit(250), 2u);  // a batch larger than the bound is still kept, alone
    EXPECT_EQ(spool.size(), 1u);
    EXPECT_EQ(spool.bytes(), 5000u);
}

TEST_F(SpoolTest, UnwritableSpoolKeepsBatchesInMemoryInOrder) {
    Spool spool;
    ASSERT_TRUE(spool.open(dir_, &error_)) << error_;
    ASSERT_TRUE(spool.append("b", 1, "on-disk", &error_));
    // The directory disappears under the agent (as with a failing disk): writes fail from now on.
    std::string command = "rm -rf '" + dir_ + "'";
    ASSERT_EQ(system(command.c_str()), 0);
    bool enospc = true;
    EXPECT_FALSE(spool.append("b", 2, "in-memory", &error_, &enospc));
    EXPECT_NE(error_.find("keeping the batch in memory"), std::string::npos) << error_;
    EXPECT_FALSE(enospc);  // ENOENT, not a full disk
    EXPECT_EQ(spool.size(), 2u);
    EXPECT_EQ(spool.in_memory(), 1u);
    EXPECT_EQ(spool.bytes(), 7u + 9u);
    std::string bytes;
    EXPECT_FALSE(spool.read_oldest(&bytes, &error_));  // the file went with the directory
    ASSERT_TRUE(spool.quarantine_oldest(&error_) || true);
    ASSERT_EQ(spool.size(), 1u);
    ASSERT_TRUE(spool.read_oldest(&bytes, &error_)) << error_;
    EXPECT_EQ(bytes, "in-memory");
    ASSERT_TRUE(spool.remove_oldest(&error_));
    EXPECT_TRUE(spool.empty());
    EXPECT_EQ(spool.in_memory(), 0u);
    EXPECT_EQ(spool.bytes(), 0u);
}
