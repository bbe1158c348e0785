// Everything public in tern.
#pragma once
#include <tern/actor.hpp>
#include <tern/actor_ref.hpp>
#include <tern/config.hpp>
#include <tern/gateway.hpp>  // link tern_gateway (meson option `gateway`) to use
#include <tern/group.hpp>
#include <tern/histogram.hpp>
#include <tern/mailbox.hpp>
#include <tern/manager.hpp>
#include <tern/message.hpp>
#include <tern/registry.hpp>  // link tern_gateway to use
#include <tern/shm.hpp>
#include <tern/thread_config.hpp>
#include <tern/topic.hpp>
#include <tern/wire.hpp>
