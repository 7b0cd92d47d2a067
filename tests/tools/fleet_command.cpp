/*
 * tests/tools/fleet_command.cpp — sends one pgfleet.wire.v1.Command to an agent, as the centre would.
 *
 * Publishes (core NATS, not JetStream: commands are addressed to a live agent) one Command on
 * fleet.cmd.<agent_id> and flushes the connection, so when the tool exits 0 the server has the message.
 * The agent answers with a CommandResult envelope on fleet.in.<namespace>.<agent_id>.results, which the
 * ingest worker stores in fleet.command_result; tests look for it there by command id.
 *   --url URL --agent ID --kind KIND [--id COMMAND_ID] [--arg NAME=VALUE]...
 * Prints the command id on stdout (a random UUID unless --id is given).
 */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "fleet.pb.h"

namespace {

/* Returns a random version 4 UUID. */
std::string random_uuid()
{
    unsigned char b[16] = {};
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, b, sizeof b) != static_cast<ssize_t>(sizeof b)) {
        fprintf(stderr, "fleet_command: cannot read /dev/urandom\n");
        exit(1);
    }
    close(fd);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    char text[37];
    snprintf(text, sizeof text, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return text;
}

/* Prints the usage and exits with status 2. */
[[noreturn]] void usage()
{
    fprintf(stderr, "usage: fleet_command --url URL --agent ID --kind KIND [--id ID] [--arg NAME=VALUE]...\n");
    exit(2);
}

} // namespace

int main(int argc, char **argv)
{
    std::string url = "nats://127.0.0.1:4222", agent, kind, id;
    pgfleet::wire::v1::Command command;
    for (int i = 1; i < argc; i++) {
        std::string arg = argv[i];
        if (i + 1 >= argc)
            usage();
        std::string value = argv[++i];
        if (arg == "--url")
            url = value;
        else if (arg == "--agent")
            agent = value;
        else if (arg == "--kind")
            kind = value;
        else if (arg == "--id")
            id = value;
        else if (arg == "--arg") {
            size_t eq = value.find('=');
            if (eq == std::string::npos)
                usage();
            (*command.mutable_args())[value.substr(0, eq)] = value.substr(eq + 1);
        } else
            usage();
    }
    if (agent.empty() || kind.empty())
        usage();
    if (id.empty())
        id = random_uuid();
    struct timeval now;
    gettimeofday(&now, nullptr);
    command.set_command_id(id);
    command.set_kind(kind);
    command.set_issued_unix_ms(static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_usec / 1000);
    std::string body;
    command.SerializeToString(&body);

    natsConnection *nc = nullptr;
    natsStatus s = natsConnection_ConnectTo(&nc, url.c_str());
    if (s == NATS_OK)
        s = natsConnection_Publish(nc, ("fleet.cmd." + agent).c_str(), body.data(), static_cast<int>(body.size()));
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(nc, 5000);
    if (s != NATS_OK) {
        fprintf(stderr, "fleet_command: %s\n", natsStatus_GetText(s));
        natsConnection_Destroy(nc);
        return 1;
    }
    natsConnection_Destroy(nc);
    nats_Close();
    printf("%s\n", id.c_str());
    return 0;
}
