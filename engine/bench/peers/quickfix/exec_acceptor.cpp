// QuickFIX C++ peer for fix-bench: a FIX.4.4 acceptor (EXEC <- CLIENT) that answers
// every NewOrderSingle with an ExecutionReport New and then a Fill, the same work as
// fix-engine's `exec` application. Built against Debian's libquickfix-dev by
// scripts/bench.sh; not part of the Rust workspace.
//
//   exec_acceptor PORT memory|file DIR DICTIONARY_XML
//
// memory: MemoryStoreFactory. file: FileStoreFactory under DIR (QuickFIX's file store
// flushes to the OS with fflush and never fsyncs). The ThreadedSocketAcceptor (a
// thread per connection, blocking reads, TCP_NODELAY) is QuickFIX's lower-latency
// acceptor. No message log. Prints "listening" once the port is open; stops on
// SIGTERM/SIGINT.
#include <cstdlib>
#include <quickfix/Application.h>
#include <quickfix/FileStore.h>
#include <quickfix/MessageCracker.h>
#include <quickfix/Session.h>
#include <quickfix/SessionSettings.h>
#include <quickfix/ThreadedSocketAcceptor.h>
#include <quickfix/fix44/ExecutionReport.h>
#include <quickfix/fix44/NewOrderSingle.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <unistd.h>

namespace {

std::atomic<bool> stop_requested{false};

void on_signal(int) { stop_requested = true; }

class Exec : public FIX::Application, public FIX::MessageCracker {
public:
  void onCreate(const FIX::SessionID&) override {}
  void onLogon(const FIX::SessionID&) override {}
  void onLogout(const FIX::SessionID&) override {}
  void toAdmin(FIX::Message&, const FIX::SessionID&) override {}
  void toApp(FIX::Message&, const FIX::SessionID&) throw(FIX::DoNotSend) override {}
  void fromAdmin(const FIX::Message&, const FIX::SessionID&)
      throw(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue,
             FIX::RejectLogon) override {}
  void fromApp(const FIX::Message& message, const FIX::SessionID& session)
      throw(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue,
             FIX::UnsupportedMessageType) override {
    crack(message, session);
  }

  void onMessage(const FIX44::NewOrderSingle& order, const FIX::SessionID& session) override {
    FIX::ClOrdID cl_ord_id;
    FIX::Symbol symbol;
    FIX::Side side;
    FIX::OrderQty qty;
    order.get(cl_ord_id);
    order.get(symbol);
    order.get(side);
    order.get(qty);
    const std::string order_id = std::to_string(++next_id_);
    send(session, order_id, cl_ord_id, symbol, side, qty, false);
    send(session, order_id, cl_ord_id, symbol, side, qty, true);
  }

private:
  void send(const FIX::SessionID& session, const std::string& order_id,
            const FIX::ClOrdID& cl_ord_id, const FIX::Symbol& symbol, const FIX::Side& side,
            const FIX::OrderQty& qty, bool fill) {
    const double done = fill ? static_cast<double>(qty.getValue()) : 0.0;
    FIX44::ExecutionReport report(
        FIX::OrderID(order_id), FIX::ExecID(std::to_string(++next_id_)),
        FIX::ExecType(fill ? FIX::ExecType_TRADE : FIX::ExecType_NEW),
        FIX::OrdStatus(fill ? FIX::OrdStatus_FILLED : FIX::OrdStatus_NEW), side,
        FIX::LeavesQty(qty.getValue() - done), FIX::CumQty(done),
        FIX::AvgPx(fill ? 100.0 : 0.0));
    report.set(cl_ord_id);
    report.set(symbol);
    report.set(qty);
    if (fill) {
      report.set(FIX::LastQty(done));
      report.set(FIX::LastPx(100.0));
    }
    FIX::Session::sendToTarget(report, session);
  }

  std::atomic<unsigned long> next_id_{0};
};

std::string settings_text(const std::string& port, const std::string& dir,
                          const std::string& dictionary, int sessions) {
  std::ostringstream s;
  s << "[DEFAULT]\n"
    << "ConnectionType=acceptor\n"
    << "SocketAcceptPort=" << port << "\n"
    << "SocketNodelay=Y\n"
    << "FileStorePath=" << dir << "/store\n"
    << "StartTime=00:00:00\nEndTime=00:00:00\n"
    << "UseDataDictionary=Y\nDataDictionary=" << dictionary << "\n"
    << "ResetOnLogon=Y\n"
    << "[SESSION]\nBeginString=FIX.4.4\nSenderCompID=EXEC\nTargetCompID=CLIENT\n";
  for (int i = 1; i < sessions; ++i) {
    s << "[SESSION]\nBeginString=FIX.4.4\nSenderCompID=EXEC\nTargetCompID=CLIENT" << i << "\n";
  }
  return s.str();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::cerr << "usage: exec_acceptor PORT memory|file DIR DICTIONARY_XML [SESSIONS (50)]\n";
    return 2;
  }
  const std::string port = argv[1], store = argv[2], dir = argv[3], dictionary = argv[4];
  const int sessions = argc == 6 ? std::atoi(argv[5]) : 50;
  if (sessions < 1) {
    std::cerr << "SESSIONS must be at least 1, not " << argv[5] << "\n";
    return 2;
  }
  if (store != "memory" && store != "file") {
    std::cerr << "store must be memory or file, not " << store << "\n";
    return 2;
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  try {
    std::istringstream text(settings_text(port, dir, dictionary, sessions));
    FIX::SessionSettings settings(text);
    Exec app;
    FIX::MemoryStoreFactory memory;
    FIX::FileStoreFactory file(dir + "/store");
    FIX::MessageStoreFactory& factory =
        store == "memory" ? static_cast<FIX::MessageStoreFactory&>(memory) : file;
    FIX::ThreadedSocketAcceptor acceptor(app, factory, settings);
    acceptor.start();
    std::cout << "listening" << std::endl;
    while (!stop_requested) {
      usleep(100000);
    }
    acceptor.stop();
  } catch (const std::exception& e) {
    std::cerr << "exec_acceptor: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
