pub mod resize_all;
