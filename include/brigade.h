/* SPDX-License-Identifier: MIT */
/* brigade: parallel map with interchangeable backends. The umbrella header: it includes the
 * public headers and declares nothing of its own. */
#ifndef BRIGADE_H
#define BRIGADE_H

#include "brigade/bigmem.h"
#include "brigade/dist.h"
#include "brigade/cache.h"
#include "brigade/error.h"
#include "brigade/future.h"
#include "brigade/journal.h"
#include "brigade/gpu.h"
#include "brigade/knn.h"
#include "brigade/map.h"
#include "brigade/npy.h"
#include "brigade/pool.h"
#include "brigade/progress.h"
#include "brigade/shared.h"
#include "brigade/topo.h"
#include "brigade/trace.h"
#include "brigade/version.h"

#endif
