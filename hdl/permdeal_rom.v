// permdeal_rom: a read-only memory initialised from a $readmemh image (DESIGN.md section 6).
//
// The one hand-written Verilog module of permdeal; hdl/rom.py (ImageRom) instantiates it.
// INIT_FILE holds DEPTH words of WIDTH bits, one fixed-width hexadecimal word per line
// (golden/rom.py: encode_hex, two's complement for signed memories). A relative INIT_FILE is
// resolved by the simulator (or synthesis tool) from its working folder.
//
// Timing: the read is synchronous and registered, like an Amaranth Memory read port in the clock
// domain of clk (not transparent, always enabled, no reset): data holds mem[addr] of the address
// presented at the previous rising edge. The plain style (one array, an initial $readmemh, one
// clocked read, no write) is what Yosys infers as a memory with initial contents (block RAM on an
// FPGA) and what Icarus and Verilator simulate.
//
// ADDR_BITS must be max(1, ceil(log2(DEPTH))); an address at or beyond DEPTH reads an undefined
// value.

`default_nettype none

module permdeal_rom #(
    parameter WIDTH = 8,
    parameter DEPTH = 1,
    parameter ADDR_BITS = 1,
    parameter INIT_FILE = ""
) (
    input  wire                 clk,
    input  wire [ADDR_BITS-1:0] addr,
    output reg  [WIDTH-1:0]     data
);

    reg [WIDTH-1:0] mem [0:DEPTH-1];

    initial $readmemh(INIT_FILE, mem);

    always @(posedge clk) begin
        data <= mem[addr];
    end

endmodule

`default_nettype wire
