# pgfleet top-level Makefile.
#
#   make            build everything into build/ (and ui/dist/)
#   make install    install the extension, binaries and UI (PREFIX, default /usr/local)
#   make run        install-deps, build, install, then `pgfleetctl up` (the embedded single-machine stack)
#   make test       install-deps, build, install, then every test suite with one summary line
#   make bench      benchmarks (bench/), printing figures beside same-run baselines
#   make fuzz       libFuzzer on the wire decoder
#   make format / make lint
#
# Layers: core/ is pure C++ (compiled without any PostgreSQL include path); extension/ and bgworkers/
# are PostgreSQL-facing and built by PGXS in extension/Makefile; agent/ and control/gateway/ are programs.

PREFIX     ?= /usr/local
PG_CONFIG  ?= /usr/lib/postgresql/15/bin/pg_config
BUILD      := $(CURDIR)/build
CXX        ?= g++
WERROR     ?= $(if $(CI),-Werror,)
export PG_CONFIG BUILD PREFIX WERROR

CORE_CXXFLAGS := -std=c++17 -O2 -g -fPIC -fvisibility=hidden -Wall -Wextra $(WERROR) \
                 -I$(CURDIR) -I$(BUILD)/gen -MMD -MP
GEN_CXXFLAGS  := -std=c++17 -O2 -g -fPIC -fvisibility=hidden -I$(BUILD)/gen

CORE_SRCS := $(wildcard core/*.cpp)
CORE_OBJS := $(patsubst core/%.cpp,$(BUILD)/core/%.o,$(CORE_SRCS)) $(BUILD)/gen/fleet.pb.o

.PHONY: all deps proto core extension agent gateway ui install run test bench fuzz format lint clean

all: core extension agent gateway ui

deps:
	control/install-deps

# --- wire contract -------------------------------------------------------------------------------
proto: $(BUILD)/gen/fleet.pb.h
$(BUILD)/gen/fleet.pb.h $(BUILD)/gen/fleet.pb.cc: proto/fleet.proto
	@mkdir -p $(BUILD)/gen
	protoc -Iproto --cpp_out=$(BUILD)/gen proto/fleet.proto
$(BUILD)/gen/fleet.pb.o: $(BUILD)/gen/fleet.pb.cc
	$(CXX) $(GEN_CXXFLAGS) -c -o $@ $<

# --- pure C++ core -------------------------------------------------------------------------------
core: $(BUILD)/libpgfleet_core.a
$(BUILD)/core/%.o: core/%.cpp $(BUILD)/gen/fleet.pb.h
	@mkdir -p $(BUILD)/core
	$(CXX) $(CORE_CXXFLAGS) -c -o $@ $<
$(BUILD)/libpgfleet_core.a: $(CORE_OBJS)
	rm -f $@ && ar rcs $@ $^
-include $(wildcard $(BUILD)/core/*.d)

# --- parts ---------------------------------------------------------------------------------------
extension: core
	$(MAKE) -C extension
agent: core
	$(MAKE) -C agent
gateway: core
	$(MAKE) -C control/gateway
ui:
	$(MAKE) -C ui

install: all
	$(MAKE) -C extension install
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/pgfleet/ui
	install -m 755 $(BUILD)/pgfleet-agent $(BUILD)/pgfleet-gateway control/pgfleetctl $(DESTDIR)$(PREFIX)/bin/
	rm -rf $(DESTDIR)$(PREFIX)/share/pgfleet/ui && cp -r ui/dist $(DESTDIR)$(PREFIX)/share/pgfleet/ui
	chmod -R a+rX $(DESTDIR)$(PREFIX)/share/pgfleet

# --- the two commands of the README ----------------------------------------------------------------
run: deps
	$(MAKE) install
	$(PREFIX)/bin/pgfleetctl up

test: deps
	$(MAKE) install
	tests/run-all

bench: deps
	@test -x bench/run-all || { echo "make bench: no benchmark is built yet (bench/ is issue 3)" >&2; exit 2; }
	$(MAKE) install
	bench/run-all

fuzz: deps core
	$(MAKE) -C tests/fuzz FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')
lint:
	clang-tidy --quiet $$(git ls-files 'core/*.cpp') -- -std=c++17 -I$(CURDIR) -I$(BUILD)/gen
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance --std=c++17 --suppress=missingInclude \
	  -I$(CURDIR) $$(git ls-files '*.cpp')

clean:
	rm -rf $(BUILD) ui/dist
	$(MAKE) -C extension clean
