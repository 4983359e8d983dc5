/*
 * Launch geometry of the one-block-per-plane kernels, host-includable so the reduction emulation
 * (cpp/tests/reductionEmulation.cpp) runs exactly the block sizes the kernels launch with.
 */
#pragma once

namespace fer_edge
{

constexpr int kWarpSize = 32;
constexpr int kMaxBlock = 256;

//! Threads per plane: enough warps to cover small planes, at most kMaxBlock.
inline int blockSizeFor(long long hw)
{
    long long const warps = (hw + kWarpSize - 1) / kWarpSize;
    return static_cast<int>(warps * kWarpSize < kMaxBlock ? warps * kWarpSize : kMaxBlock);
}

} // namespace fer_edge
