// Where tensor storage lives, and the few raw memory operations every backend needs.
// Without CUDA in the build, cuda_available() is false and the CUDA calls throw.
#pragma once

#include <cstddef>
#include <string_view>

#include "nibble/core/memory.h"

namespace nibble {

enum class Device : unsigned char { cpu, cuda };

std::string_view device_name(Device device);
// Parses "cpu" / "cuda"; throws nibble::Error naming the accepted values otherwise.
Device parse_device(std::string_view name);

// True when the build has CUDA and a GPU is visible to the process.
bool cuda_available();

// Device memory, counted in device_memory_ledger() under `category`. Out of memory throws
// OutOfMemoryError saying how much was asked and how much was free.
void* cuda_allocate(size_t bytes, MemoryCategory category);
// Released memory is cached for reuse by a later allocation of the same size (see
// cuda_memory.cpp); cuda_cached_bytes() is what the cache holds, cuda_release_cached() returns it.
void cuda_release(void* pointer, size_t bytes, MemoryCategory category);
size_t cuda_cached_bytes();
void cuda_release_cached();

// Copies between any two devices (synchronous with respect to the host).
void copy_bytes(void* destination, Device destination_device, const void* source,
                Device source_device, size_t bytes);
void cuda_synchronize();

}  // namespace nibble
