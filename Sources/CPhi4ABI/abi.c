// Checks, at compile time, the layout facts the Swift side of the C ABI relies on.
#include "../../include/phi4.h"

_Static_assert(sizeof(phi4_status) == 4, "phi4_status is 32-bit");
_Static_assert(sizeof(phi4_stop_reason) == 4, "phi4_stop_reason is 32-bit");
_Static_assert(offsetof(phi4_model_params, struct_size) == 0, "struct_size comes first");
_Static_assert(offsetof(phi4_context_params, struct_size) == 0, "struct_size comes first");
_Static_assert(offsetof(phi4_sampling_params, struct_size) == 0, "struct_size comes first");
_Static_assert(offsetof(phi4_generate_params, struct_size) == 0, "struct_size comes first");
_Static_assert(offsetof(phi4_model_info, struct_size) == 0, "struct_size comes first");
