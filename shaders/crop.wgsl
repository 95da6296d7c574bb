// crop: keep a rectangle, as an integer pixel map. The kernel is the
// one rotate, flip, crop and add_border share, as they share src/ops/remap.rs on the CPU.
//#include remap
