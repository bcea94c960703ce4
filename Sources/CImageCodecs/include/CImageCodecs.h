// Debian's libjpeg-turbo, libpng and libwebp, exposed to Swift.
#pragma once
#include <stdio.h>
#include <stddef.h>
#include <jpeglib.h>
#include <png.h>
#include <webp/decode.h>
