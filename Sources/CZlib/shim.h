// zlib, used to inflate gzip-compressed IDX files.
#pragma once
#include <zlib.h>
